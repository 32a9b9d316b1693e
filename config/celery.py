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
    import importlib

    for module in ("deployments.engine", "deployments.runtimes.single_host", "deployments.runtimes.kubernetes"):
        try:
            importlib.import_module(module)
        except ImportError:  # a runtime whose libraries are not installed here
            pass
    gc.collect()
    gc.freeze()
