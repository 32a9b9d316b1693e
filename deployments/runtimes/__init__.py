"""Which runtime runs a project: a registry from runtime name to a factory.

`SWITCHBACK["RUNTIMES"]` maps a runtime name ("single-host", "kubernetes") to the dotted
path of a factory; tests register their own there.  A factory takes no argument, or
`cluster=<name>` for a project that runs on one of the clusters in
`SWITCHBACK["KUBE_CLUSTERS"]`.  Instances are cached per process (and per cluster)
because they hold connections (container API, HAProxy socket, API server).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from ..errors import PermanentError
from .base import Runtime

_cache: dict[tuple[str, str], Runtime] = {}
_lock = threading.Lock()


def runtime_get(*, name: str, cluster: str = "") -> Runtime:
    key = (name, cluster)
    with _lock:
        if key not in _cache:
            factories = settings.SWITCHBACK.get("RUNTIMES", {})
            if name not in factories:
                raise PermanentError(
                    f"No runtime named '{name}' is configured here "
                    f"(configured: {', '.join(sorted(factories)) or 'none'})."
                )
            try:
                factory = import_string(factories[name])
                _cache[key] = factory(cluster=cluster) if cluster else factory()
            except ImportError as exc:
                raise PermanentError(f"The '{name}' runtime is not available here: {exc}.") from exc
        return _cache[key]


def runtime_for(*, runtime: str, cluster: str = "") -> Runtime:
    """The runtime instance for a project's (or a deployment's snapshot of its) settings.

    Only runtimes that know clusters are given one: Project.clean refuses a cluster for
    the others, so a non-empty cluster here always names one of KUBE_CLUSTERS."""
    return runtime_get(name=runtime, cluster=cluster)


def runtime_cache_clear() -> None:
    with _lock:
        _cache.clear()
