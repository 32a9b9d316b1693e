"""What a platform process imports before its first request or task.

The rollout engine and the runtimes are imported lazily by the code paths that need them
(a rollback, a rollout step), and importing them costs 150-200 ms each on the benchmark
machine: paid by the first rollback a web worker served, before its switch.  Celery's
workers (config/celery.py) and gunicorn's (config/gunicorn.py) import them at start-up.
"""

from __future__ import annotations

import importlib


def platform_modules() -> list[str]:
    from django.conf import settings

    modules = ["deployments.engine", "deployments.runtimes.single_host"]
    # The Kubernetes client takes seconds to import (12 s on a loaded 2-core machine, most of
    # a worker's start): only when a cluster is configured.  A project that names the
    # kubernetes runtime without one imports it on its first use.
    kube = settings.SWITCHBACK.get("KUBERNETES", {})
    if settings.SWITCHBACK.get("KUBE_CLUSTERS") or any(kube.get(k) for k in ("kubeconfig", "in_cluster", "host")):
        modules.append("deployments.runtimes.kubernetes")
    return modules


def platform_modules_import() -> None:
    for module in platform_modules():
        try:
            importlib.import_module(module)
        except ImportError:  # a runtime whose libraries are not installed here
            pass
