"""Probe semantics: thresholds, period, initial delay, and what a failure says."""

from __future__ import annotations

import socket

import pytest

from deployments.runtimes.base import Probe
from deployments.runtimes.single_host import probes as p

from .backends import Backend


@pytest.fixture(scope="module")
def backend():
    b = Backend("probe-target")
    yield b
    b.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_probe_results(backend):
    assert p.http_probe("127.0.0.1", backend.port, "/", 1) == p.ProbeResult(True, "returned 200")
    assert p.http_probe("127.0.0.1", backend.port, "/status/302", 1).ok  # 3xx is success
    assert p.http_probe("127.0.0.1", backend.port, "/status/503", 1) == p.ProbeResult(False, "returned 503")
    assert p.http_probe("127.0.0.1", _closed_port(), "/", 1).detail == "connection refused"
    assert p.tcp_probe("127.0.0.1", backend.port, 1).ok


def test_timeout_is_reported(tmp_path):
    with socket.socket() as silent:  # accepts but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        result = p.http_probe("127.0.0.1", silent.getsockname()[1], "/", 0.2)
    assert result == p.ProbeResult(False, "timed out after 0.2s")


def test_failure_threshold_counts_consecutive_failures(backend):
    probe = Probe(path="/status/503", period_seconds=1, failure_threshold=3)
    counter = p.Counter()
    for second in range(3):
        assert p.run(probe, counter, 0.0, "127.0.0.1", backend.port, now=100.0 + second)
    assert (counter.failures, counter.passed, counter.detail) == (3, False, "returned 503")


def test_period_is_respected_between_calls(backend):
    probe = Probe(path="/", period_seconds=2)
    counter = p.Counter()
    assert p.run(probe, counter, 0.0, "127.0.0.1", backend.port, now=10.0)
    assert not p.run(probe, counter, 0.0, "127.0.0.1", backend.port, now=11.0)  # not due
    assert p.run(probe, counter, 0.0, "127.0.0.1", backend.port, now=12.0)
    assert counter.successes == 2 and counter.passed


def test_initial_delay_and_success_threshold(backend):
    probe = Probe(path="/", period_seconds=1, initial_delay_seconds=5, success_threshold=2)
    counter = p.Counter()
    assert not p.run(probe, counter, 100.0, "127.0.0.1", backend.port, now=103.0)
    assert p.run(probe, counter, 100.0, "127.0.0.1", backend.port, now=105.0)
    assert not counter.passed  # one success of two
    p.run(probe, counter, 100.0, "127.0.0.1", backend.port, now=106.0)
    assert counter.passed and counter.ever_passed


def test_probes_survive_container_labels():
    label = p.probes_to_label(startup=None, readiness=Probe(path="/readyz", period_seconds=0.5))
    assert p.probes_from_label(label) == {"readiness": Probe(path="/readyz", period_seconds=0.5)}
    assert p.probes_from_label("not json") == {}


def test_store_round_trip(tmp_path):
    store = p.ProbeStore(str(tmp_path))
    replica = p.ReplicaProbes(first_seen=1.5)
    replica.readiness.failures = 2
    store.save("hello", "3", {"abc": replica})
    assert store.load("hello", "3") == {"abc": replica}
    store.delete("hello", "3")
    store.delete("hello", "3")  # idempotent
    assert store.load("hello", "3") == {}
