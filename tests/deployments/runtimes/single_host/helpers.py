"""Small helpers shared by the end-to-end tests (HTTP through HAProxy, polling, load)."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from deployments.runtimes.base import HealthState


def get(runtime, project: str, path: str, timeout: float = 10) -> tuple[int, str]:
    """GET path from the project through HAProxy, routed by Host header."""
    base, host = runtime.route_url(project)
    netloc = urlsplit(base).netloc
    conn = http.client.HTTPConnection(netloc, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": f"{host}:{netloc.split(':')[1]}"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_health(
    runtime, project: str, revision: str, *, until=(HealthState.READY,), deadline: float = 30, interval: float = 0.1
):
    """Poll revision_health (as the rollout engine does) until a wanted state or deadline."""
    end = time.monotonic() + deadline
    while True:
        health = runtime.revision_health(project=project, revision=revision)
        if health.state in until or time.monotonic() > end:
            return health
        time.sleep(interval)


def wait_served(runtime, project: str, path: str, *, deadline: float = 10) -> tuple[int, str]:
    """GET until HAProxy answers 2xx (its health check admitted a server) or the deadline."""
    end = time.monotonic() + deadline
    while True:
        status, body = get(runtime, project, path)
        if 200 <= status < 300 or time.monotonic() > end:
            return status, body
        time.sleep(0.05)


class Load:
    """Closed-loop HTTP load on a few threads; counts statuses, bodies and errors."""

    def __init__(self, runtime, project: str, path: str = "/version", threads: int = 4):
        self.runtime, self.project, self.path = runtime, project, path
        self.statuses: Counter = Counter()
        self.bodies: Counter = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body = get(self.runtime, self.project, self.path)
                with self._lock:
                    self.statuses[status] += 1
                    self.bodies[body.strip()] += 1
            except Exception as exc:  # noqa: BLE001 - any failure is what we count
                with self._lock:
                    self.errors.append(repr(exc))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)

    @property
    def non_2xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300)

    def wait_for(self, count: int, deadline: float = 10) -> None:
        end = time.monotonic() + deadline
        start = self.total
        while self.total - start < count and time.monotonic() < end:
            time.sleep(0.01)
