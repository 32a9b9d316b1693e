"""Gates on Kubernetes against a REAL Prometheus (Debian's package): it scrapes an exporter
this test serves (ingress-nginx's request counter, driven as traffic), the engine runs
against the fake API server with the ingress-nginx router, and the gate's built-in
queries are answered by Prometheus itself.  Real time here (Prometheus scrapes on its own
clock): the test waits for outcomes, never asserts a duration."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from deployments.models import State
from deployments.runtimes import runtime_cache_clear
from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401  (a fixture)
from tests.rollout import rollout_drive_until_wait
from tests.single_host_fixtures import free_port

from .test_gates_kubernetes import CANARY, STABLE, canary_at_first_step

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed")]


class Exporter:
    """/metrics in Prometheus's text format; a thread adds traffic every 50 ms."""

    def __init__(self):
        self.counts: dict[tuple, float] = {}
        self.rates: dict[tuple, float] = {}  # (labels..., status) -> requests per second
        self.lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with exporter.lock:
                    lines = ["# TYPE nginx_ingress_controller_requests counter"]
                    for key, value in sorted(exporter.counts.items()):
                        labels = ",".join(f'{k}="{v}"' for k, v in key)
                        lines.append(f"nginx_ingress_controller_requests{{{labels}}} {value:.0f}")
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.stop = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._traffic, daemon=True).start()

    def rate(self, labels: dict, status: str, per_second: float) -> None:
        key = tuple(sorted({**labels, "status": status}.items()))
        with self.lock:
            self.rates[key] = per_second
            self.counts.setdefault(key, 0.0)

    def _traffic(self):
        while not self.stop.wait(0.05):
            with self.lock:
                for key, rate in self.rates.items():
                    self.counts[key] += rate * 0.05

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def real_prometheus(tmp_path):
    exporter = Exporter()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ingress-nginx
    static_configs:
      - targets: ["127.0.0.1:{exporter.port}"]
""")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("prometheus did not become ready")
        yield url, exporter
    finally:
        proc.terminate()
        proc.wait(20)
        exporter.close()


@pytest.fixture
def k8s(settings, kube_api, real_prometheus):  # noqa: F811
    url, _ = real_prometheus
    settings.SWITCHBACK = {**settings.SWITCHBACK,
                           "KUBERNETES": {"host": kube_api.url, "namespace": "default",
                                          "progress_deadline_seconds": 5},
                           "GATE_PROMETHEUS_URL": url, "GATE_PROMETHEUS_WINDOW": 5}
    runtime_cache_clear()
    yield kube_api
    runtime_cache_clear()


def drive_until_final(d, deadline: float = 90):
    end = time.monotonic() + deadline
    while time.monotonic() < end and not d.is_final:
        d = rollout_drive_until_wait(d)
        time.sleep(0.2)
    return d


@pytest.mark.parametrize("errors_per_second,expected", [(4, State.FAILED), (0, State.SUCCEEDED)])
def test_real_prometheus_answers_the_gate(k8s, make_project, user, real_prometheus, errors_per_second, expected):
    _, exporter = real_prometheus
    exporter.rate(CANARY, "200", 20 - errors_per_second)
    exporter.rate(CANARY, "500", errors_per_second)
    exporter.rate(STABLE, "200", 180)
    project, d = canary_at_first_step(k8s, make_project, user)
    d = drive_until_final(d)
    assert d.state == expected, d.failure_reason
    if expected == State.FAILED:
        assert d.failure_reason.startswith("Gate failed: error rate ") and "(stable 0.0%)" in d.failure_reason
        assert "threshold 2%" in d.failure_reason
        selector = k8s.get("services", "default", "hello")["spec"]["selector"]
        assert selector["switchback.dev/revision"] == "1"
