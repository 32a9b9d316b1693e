"""Interleaving two workers deterministically: barriers, lock-wait detection, a clock.

No sleeps decide an outcome here.  A worker is paused at a named point (a runtime call,
through the in-memory runtime's hooks) and released when the test says; "the other
worker is now blocked on the project's lock" is read from PostgreSQL's own lock table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import connection, connections

from deployments.models import Deployment, Project, State

BOUND = 20.0  # seconds: a bound on a hang, never what a test waits for on purpose


class Worker(threading.Thread):
    """Runs `target` in its own thread (and its own database connection), keeps its result."""

    def __init__(self, name: str, target: Callable[[], object]):
        super().__init__(name=name, daemon=True)
        self.target, self.result, self.error = target, None, None
        self.backend_pid: int | None = None

    def run(self) -> None:
        try:
            self.backend_pid = connection.cursor().connection.info.backend_pid
            self.result = self.target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        finally:
            connections.close_all()

    def finish(self):
        self.join(BOUND)
        assert not self.is_alive(), f"{self.name} did not finish"
        if self.error is not None:
            raise self.error
        return self.result


class Gate:
    """A pause point: the worker calls `gate()`, which blocks until the test opens it."""

    def __init__(self, when: Callable[..., bool] = lambda **_: True):
        self.when = when
        self.reached = threading.Event()
        self.opened = threading.Event()
        self.thread: str | None = None

    def __call__(self, **kwargs) -> None:
        if self.reached.is_set() or not self.when(**kwargs):
            return  # one pause per gate
        self.thread = threading.current_thread().name
        self.reached.set()
        assert self.opened.wait(BOUND), "the gate was never opened"

    def wait_reached(self) -> None:
        assert self.reached.wait(BOUND), "the worker never reached the gate"

    def open(self) -> None:
        self.opened.set()


def wait_until_blocked_on_a_lock(worker: Worker) -> None:
    """Return once the worker's database session waits for a lock another session holds."""
    end = time.monotonic() + BOUND
    while time.monotonic() < end:
        if worker.backend_pid is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                               [worker.backend_pid])
                row = cursor.fetchone()
            if row and row[0] == "Lock":
                return
        assert worker.is_alive(), "the worker finished instead of waiting for the lock"
        time.sleep(0.005)  # polling the lock table; the outcome never depends on this delay
    raise AssertionError(f"{worker.name} never blocked on a lock")


class Clock:
    """A controllable `timezone.now`."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def assert_agree(project: Project, runtime) -> None:
    """The database, the runtime's routes and the history tell one story, and nobody saw
    a request fail (no traffic to a revision that does not run, nothing removed while it served)."""
    project = Project.objects.select_related("live_deployment__source").get(pk=project.pk)
    assert runtime.violations == []
    open_ = Deployment.objects.filter(project=project).exclude(
        state__in=(State.SUCCEEDED, State.FAILED, State.SUPERSEDED, State.CANCELLED))
    assert not open_.exists(), list(open_.values_list("number", "state"))
    live = project.live_deployment
    assert live is not None and live.state == State.SUCCEEDED
    assert runtime.weights[project.slug] == {live.revision: 100}
    assert (project.slug, live.revision) in runtime.running
    # History: the live deployment is the last one that went live, and every finished
    # deployment's timeline ends with the phase it is in.
    last = Deployment.objects.filter(project=project, live_at__isnull=False, state=State.SUCCEEDED) \
        .order_by("-live_at").first()
    assert last == live
    for deployment in Deployment.objects.filter(project=project):
        ending = deployment.events.filter(kind__in=("phase", "error")).order_by("-id").first()
        assert ending is not None and ending.message.lower().startswith(deployment.get_state_display().lower()), \
            (deployment.number, deployment.state, ending.message if ending else None)
