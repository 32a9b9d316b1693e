"""The router against a real HAProxy with in-process backends: reloads, restarts, drains."""

from __future__ import annotations

import http.client
import os
import shutil
import threading
import time
from collections import Counter

import pytest

from deployments.runtimes.single_host.haproxy import HAProxyRouter, _running
from tests.single_host_fixtures import free_port

from .backends import Backend

pytestmark = [
    pytest.mark.haproxy,
    pytest.mark.skipif(
        shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"),
        reason="haproxy not installed (run scripts/install-system-deps.sh)",
    ),
]


@pytest.fixture
def router(tmp_path):
    r = HAProxyRouter(str(tmp_path), bind=f"127.0.0.1:{free_port()}")
    r.ensure_running()
    yield r
    pid = r.pid()
    r.stop()
    assert pid is None or not _running(pid), "haproxy left running"


@pytest.fixture
def backends():
    made = {name: Backend(name) for name in ("a", "b", "c")}
    yield made
    for b in made.values():
        b.close()


def _get(router, project, path="/"):
    conn = http.client.HTTPConnection(router.bind, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": f"{project}.localhost"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_reload_for_a_new_project_keeps_servers_and_drops_nothing(router, backends):
    router.sync_servers("alpha", "1", {"r1-0": ("127.0.0.1", backends["a"].port)})
    router.set_weights("alpha", {"r1-0": 256})
    results: Counter = Counter()
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                results[_get(router, "alpha")] += 1
            except OSError as exc:
                results[repr(exc)] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        old_pid = router.api.info()["Pid"]
        started = time.perf_counter()
        router.ensure_backend("beta")  # a new backend: regenerate + seamless reload
        reload_seconds = time.perf_counter() - started
        assert router.api.info()["Pid"] != old_pid
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    print(f"\nreload: {reload_seconds * 1000:.0f} ms, {sum(results.values())} requests: {dict(results)}")
    assert set(results) == {(200, "a")}, results
    assert router.server_stats("alpha")["r1-0"]["weight"] == 256  # survived the reload
    assert _get(router, "beta")[0] == 503  # exists, no server yet


def test_restart_restores_servers_weights_and_states(router, backends):
    router.sync_servers("alpha", "1", {"r1-0": ("127.0.0.1", backends["a"].port)})
    router.sync_servers("alpha", "2", {"r2-0": ("127.0.0.1", backends["b"].port)})
    router.sync_servers("alpha", "3", {"r3-0": ("127.0.0.1", backends["c"].port)})
    router.set_weights("alpha", {"r2-0": 256})
    before = router.server_stats("alpha")
    router.stop()
    assert not router.api.alive()
    router.ensure_running()
    after = router.server_stats("alpha")
    assert {n: (s["weight"], s["addr"]) for n, s in after.items()} == {
        n: (s["weight"], s["addr"]) for n, s in before.items()
    }
    assert after["r3-0"]["state"] == "maint"  # never given traffic
    assert _get(router, "alpha") == (200, "b")


def test_replaced_replica_gets_its_new_address(router, backends):
    router.sync_servers("alpha", "1", {"r1-0": ("127.0.0.1", backends["a"].port)})
    router.set_weights("alpha", {"r1-0": 256})
    router.sync_servers("alpha", "1", {"r1-0": ("127.0.0.1", backends["c"].port)})
    assert _get(router, "alpha") == (200, "c")
    assert router.load_state().projects["alpha"].servers["r1-0"].port == backends["c"].port


def test_remove_waits_for_in_flight_requests(router, backends):
    router.sync_servers("alpha", "1", {"r1-0": ("127.0.0.1", backends["a"].port)})
    router.sync_servers("alpha", "2", {"r2-0": ("127.0.0.1", backends["b"].port)})
    router.set_weights("alpha", {"r1-0": 256})
    result = {}
    slow = threading.Thread(target=lambda: result.update(r=_get(router, "alpha", "/slow")))
    slow.start()
    time.sleep(0.2)
    router.set_weights("alpha", {"r2-0": 256})
    started = time.perf_counter()
    router.remove_servers("alpha", ["r1-0"], drain_seconds=5)
    waited = time.perf_counter() - started
    slow.join()
    assert result["r"] == (200, "a")
    assert 0.5 < waited < 5
    assert set(router.server_stats("alpha")) == {"r2-0"}
    router.remove_servers("alpha", ["r1-0", "r9-0"])  # absent: nothing to do
    router.remove_servers("nobody", ["r1-0"])


def test_adopt_reads_servers_back_and_repairs_what_differs(router, backends):
    """A platform starting beside a running HAProxy reads its servers and weights back
    (`show servers state`) and puts back what differs from the saved routes."""
    router.sync_servers("alpha", "1", {"r1-0": ("127.0.0.1", backends["a"].port),
                                       "r1-1": ("127.0.0.1", backends["b"].port)})
    router.set_weights("alpha", {"r1-0": 128, "r1-1": 128})
    assert router.adopt() == []  # what runs agrees with the saved state: nothing to do
    backend = router.backend("alpha")
    state = router.api.servers_state(backend)
    assert {n: (s["port"], s["weight"], s["state"]) for n, s in state.items()} == {
        "r1-0": (backends["a"].port, 128, "ready"), "r1-1": (backends["b"].port, 128, "ready")}

    # Someone (or something) changed HAProxy behind the platform's back.
    router.api.batch([f"set weight {backend}/r1-1 7", f"set server {backend}/r1-0 state maint"])
    router.api.execute(f"experimental-mode on; add server {backend}/stray 127.0.0.1:{backends['c'].port}")
    fixed = router.adopt()
    assert len(fixed) == 3, fixed
    state = router.api.servers_state(backend)
    assert {n: (s["weight"], s["state"]) for n, s in state.items()} == {
        "r1-0": (128, "ready"), "r1-1": (128, "ready")}


def test_servers_get_health_checks_on_the_readiness_path(router, backends):
    from deployments.runtimes.single_host.haproxy_config import HealthCheck

    check = HealthCheck(path="/readyz", inter_ms=100, fall=2, rise=1, timeout_ms=500)
    router.sync_servers("alpha", "1", {"r1-0": ("127.0.0.1", backends["a"].port)}, check=check)
    router.set_weights("alpha", {"r1-0": 256})
    router.ensure_backend("beta")  # a reload: the configuration is written from the state
    with open(router.paths.config) as f:
        assert f"r1-0 127.0.0.1:{backends['a'].port} weight 256 check inter 100 fall 2 rise 1" in f.read()
    # A server added at run time (no reload) is checked too.
    router.sync_servers("alpha", "2", {"r2-0": ("127.0.0.1", backends["b"].port)})
    rows = {r["svname"]: r for r in router.api.show_stat(router.backend("alpha"))}
    assert rows["r1-0"]["check_status"] and rows["r2-0"]["check_status"]  # both have a check
