"""HAProxy's per-server counters, the metric gates' source on one host: real HAProxy,
in-process backends (no containers)."""

from __future__ import annotations

import http.client
import os
import shutil

import pytest

from deployments.runtimes.single_host.haproxy import HAProxyRouter
from tests.single_host_fixtures import free_port

from .backends import Backend

pytestmark = [
    pytest.mark.haproxy,
    pytest.mark.skipif(shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"),
                       reason="haproxy not installed (run scripts/install-system-deps.sh)"),
]


@pytest.fixture
def router(tmp_path):
    r = HAProxyRouter(str(tmp_path), bind=f"127.0.0.1:{free_port()}")
    r.ensure_running()
    yield r
    r.stop()


def _get(router, path):
    conn = http.client.HTTPConnection(router.bind, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "alpha.localhost"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_counters_count_requests_and_5xx_per_server(router):
    stable, canary = Backend("stable"), Backend("canary")
    try:
        router.sync_servers("alpha", "1", {"r1-0": ("127.0.0.1", stable.port)})
        router.sync_servers("alpha", "2", {"r2-0": ("127.0.0.1", canary.port)})
        router.set_weights("alpha", {"r1-0": 256, "r2-0": 0})
        statuses = [_get(router, "/status/503" if i % 4 == 0 else "/") for i in range(40)]
        router.set_weights("alpha", {"r1-0": 0, "r2-0": 256})
        statuses += [_get(router, "/status/500" if i % 5 == 0 else "/") for i in range(50)]
        counters = router.server_counters("alpha")
        assert counters["r1-0"]["requests"] == 40 and counters["r1-0"]["errors"] == 10
        assert counters["r2-0"]["requests"] == 50 and counters["r2-0"]["errors"] == 10
        assert statuses.count(503) == 10 and statuses.count(500) == 10
        assert counters["r2-0"]["rtime_ms"] >= 0
    finally:
        stable.close()
        canary.close()


def test_no_backend_means_no_counters(router):
    assert router.server_counters("nobody") == {}
