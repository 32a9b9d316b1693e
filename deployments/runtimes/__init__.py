"""Which engine runs a project: a registry from runtime name to a factory.

`SWITCHBACK["RUNTIMES"]` maps a runtime name ("single-host", "kubernetes") to the dotted
path of a zero-argument factory; tests register their own there.  Instances are cached
per process because they hold connections (engine API, HAProxy socket, API server).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from ..errors import PermanentError
from .base import Runtime

_cache: dict[str, Runtime] = {}
_lock = threading.Lock()


def runtime_get(*, name: str) -> Runtime:
    with _lock:
        if name not in _cache:
            factories = settings.SWITCHBACK.get("RUNTIMES", {})
            if name not in factories:
                raise PermanentError(
                    f"No runtime named '{name}' is configured here "
                    f"(configured: {', '.join(sorted(factories)) or 'none'})."
                )
            try:
                _cache[name] = import_string(factories[name])()
            except ImportError as exc:
                raise PermanentError(f"The '{name}' runtime is not available here: {exc}.") from exc
        return _cache[name]


def runtime_cache_clear() -> None:
    with _lock:
        _cache.clear()
