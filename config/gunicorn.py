"""gunicorn settings for every way Switchback's web process starts.

    gunicorn --config python:config.gunicorn config.wsgi ...

Used by the platform image (platform/entrypoint.sh), `manage.py up` and the benchmarks.
Command-line options (bind, workers, timeout) still override what is here.

Garbage collection: a web worker holds a few hundred thousand long-lived objects
(Django, DRF, Celery, kombu, the URLconf, model metadata).  CPython's full collection
walks all of them, which took 60-140 ms per worker on the benchmark machine, and the
workers, serving similar requests, reached it at about the same moment: a burst of slow
webhook answers every few seconds (bench/webhook_ingest.py, docs/benchmarks.md).
`gc.freeze()` moves what exists into a permanent generation the collector skips; done
once the application is loaded and again after the first requests (which fill lazy
caches: URL resolvers, templates, querysets' compiled SQL), a full collection then
takes 1-4 ms.  Cycles created later are still collected as usual.
"""

from __future__ import annotations

import gc

# Requests after which the worker freezes what its first requests loaded (lazy imports
# and caches).  Small enough to happen during warm-up, large enough to cover every route
# a platform's first visitors use.
FREEZE_AFTER_REQUESTS = 50

_served = 0


def post_worker_init(worker) -> None:
    """The worker has imported the application: import what a rollback needs (the engine
    and the runtimes, config/preload.py), then freeze it."""
    from config.preload import platform_modules_import

    platform_modules_import()
    gc.collect()
    gc.freeze()


def post_request(worker, req, environ, resp) -> None:
    global _served
    _served += 1
    if _served == FREEZE_AFTER_REQUESTS:
        gc.collect()
        gc.freeze()


# Linux's prctl(2) option: a signal the kernel sends this process when its parent dies.
PR_SET_PDEATHSIG = 1


def post_fork(server, worker) -> None:
    """A worker stops (SIGTERM: graceful) when its master dies, even by SIGKILL.

    Otherwise orphaned workers keep the listening socket for a while, and the master that
    supervisord starts in its place cannot bind the port and exits, again and again.
    """
    import ctypes
    import ctypes.util
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
