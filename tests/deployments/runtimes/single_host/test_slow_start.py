"""A slow start on the single host: readiness failures before the first success are not a
failure (the ready deadline judges them); a crash still is.  The probe timeline runs on a
controllable clock against a real HTTP server, so 25 s of booting take no time."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from deployments.runtimes.base import Probe
from deployments.runtimes.single_host import probes as p
from deployments.runtimes.single_host.health import evaluate


@pytest.fixture
def app():
    """An app whose /readyz answers 503 until `app.ready` is set."""
    state = SimpleNamespace(ready=False)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200 if state.ready else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.port = server.server_address[1]
    yield state
    server.shutdown()


def _container(port: int, status: str = "running"):
    return SimpleNamespace(status=status, attrs={"NetworkSettings": {"Ports": {"8000/tcp": [{"HostPort": str(port)}]}},
                                                 "State": {"Status": status, "ExitCode": 1}},
                           logs=lambda tail: b"boom")


def test_an_app_ready_after_25_s_is_waiting_until_then_never_failed(app):
    readiness = Probe(path="/readyz", period_seconds=1.0, timeout_seconds=1.0, failure_threshold=3)
    counters = p.ReplicaProbes(first_seen=1000.0)
    for second in range(0, 31):
        app.ready = second >= 25
        health = evaluate(_container(app.port), port=8000, probes={"readiness": readiness}, counters=counters,
                          now=1000.0 + second)
        if second < 25:
            assert not health.ready and not health.failed, (second, health)
            assert "returned 503" in health.waiting
        else:
            assert health.ready, (second, health)
    assert counters.readiness.ever_passed


def test_a_crash_while_booting_still_fails_at_once(app):
    counters = p.ReplicaProbes(first_seen=1000.0)
    health = evaluate(_container(app.port, status="exited"), port=8000, probes={}, counters=counters, now=1000.0)
    assert health.failed.startswith("exited with code 1")


def test_a_booting_replica_is_seen_ready_within_a_tenth_of_a_second_not_a_probe_period_later(app):
    """Before their first success, startup and readiness run at the boot pace (0.1 s), so a
    cold start that answers after 0.35 s is ready at 0.4 s, not at the next 1 s period."""
    startup = Probe(path="/healthz", period_seconds=1.0, timeout_seconds=1.0, failure_threshold=3)
    readiness = Probe(path="/readyz", period_seconds=1.0, timeout_seconds=1.0, failure_threshold=3)
    counters = p.ReplicaProbes(first_seen=1000.0)
    seen_ready = None
    for tick in range(0, 21):  # a worker reading health every 50 ms for 1 s
        t = tick * 0.05
        app.ready = t >= 0.35
        health = evaluate(_container(app.port), port=8000, probes={"startup": startup, "readiness": readiness},
                          counters=counters, now=1000.0 + t)
        assert not health.failed, (t, health)
        if health.ready and seen_ready is None:
            seen_ready = t
    assert seen_ready is not None and seen_ready <= 0.45, seen_ready


def test_the_boot_pace_keeps_the_failure_budget_of_the_period(app):
    """A startup probe of 3 x 1 s fails after 3 s of failures, not after 3 fast attempts."""
    startup = Probe(path="/healthz", period_seconds=1.0, timeout_seconds=1.0, failure_threshold=3)
    counters = p.ReplicaProbes(first_seen=1000.0)
    failed_at = None
    for tick in range(0, 41):
        t = tick * 0.1
        health = evaluate(_container(app.port), port=8000, probes={"startup": startup}, counters=counters,
                          now=1000.0 + t)
        if health.failed and failed_at is None:
            failed_at = t
    assert failed_at is not None and 2.8 <= failed_at <= 3.0, failed_at
