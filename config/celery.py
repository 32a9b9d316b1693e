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

    from django.conf import settings

    modules = ["deployments.engine", "deployments.runtimes.single_host"]
    # The Kubernetes client takes seconds to import (12 s on a loaded 2-core machine, most of
    # a worker's start): only when a cluster is configured.  A project that names the
    # kubernetes runtime without one imports it on its first task.
    kube = settings.SWITCHBACK.get("KUBERNETES", {})
    if settings.SWITCHBACK.get("KUBE_CLUSTERS") or any(kube.get(k) for k in ("kubeconfig", "in_cluster", "host")):
        modules.append("deployments.runtimes.kubernetes")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:  # a runtime whose libraries are not installed here
            pass
    gc.collect()
    gc.freeze()
