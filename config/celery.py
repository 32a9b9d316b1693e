"""The Celery app, beside the settings (cookiecutter-django layout)."""

import os

from celery import Celery, signals

from config import broker_resilience

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

broker_resilience.install()

app = Celery("switchback")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _preload(**_kwargs) -> None:
    """Import the rollout engine and the runtimes before the pool forks, so the first
    task of each child (a rollback, say) does not pay for imports; then freeze them out
    of the garbage collector's way before the fork, as the web workers do (config/gunicorn.py
    says why), which also keeps the children's copy-on-write pages shared."""
    import gc

    from config.preload import platform_modules_import

    platform_modules_import()
    gc.collect()
    gc.freeze()


def _background_nice() -> int:
    from django.conf import settings

    return max(0, min(19, int(getattr(settings, "BACKGROUND_NICE", 0))))


@signals.celeryd_after_setup.connect
def _worker_yields_cpu(sender=None, instance=None, **_kwargs) -> None:
    """A worker that does background work (anything beyond the "switch" queue) lowers its
    priority before its pool forks (BACKGROUND_NICE); the switch worker keeps its own."""
    from django.conf import settings

    queues = set(instance.app.amqp.queues.consume_from or instance.app.amqp.queues) if instance else set()
    increment = _background_nice()
    if increment and queues - {settings.SWITCH_QUEUE}:
        os.nice(increment)


@signals.beat_init.connect
def _beat_yields_cpu(**_kwargs) -> None:
    increment = _background_nice()
    if increment:
        os.nice(increment)

