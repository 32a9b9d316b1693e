"""Gates on Kubernetes: the engine against the fake API server (ingress-nginx router), the
gate reading the Prometheus HTTP API (a fake over HTTP, asked by the platform's httpx
client) with the built-in ingress-nginx query templates, with a controllable clock."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import DeploymentEvent, State
from deployments.runtimes import runtime_cache_clear
from deployments.services import deployment_request
from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401  (a fixture)
from tests.doubles.prometheus import FakePrometheus
from tests.rollout import rollout_drive, rollout_drive_until_wait

pytestmark = pytest.mark.django_db
REQUESTS = "nginx_ingress_controller_requests"
BUCKETS = "nginx_ingress_controller_request_duration_seconds_bucket"
CANARY = {"namespace": "default", "ingress": "hello-canary", "service": "hello-r2"}
STABLE = {"namespace": "default", "ingress": "hello", "service": "hello"}


@pytest.fixture
def prometheus():
    with FakePrometheus() as fake:
        yield fake


@pytest.fixture
def k8s(settings, kube_api, prometheus):  # noqa: F811
    settings.SWITCHBACK = {**settings.SWITCHBACK,
                           "KUBERNETES": {"host": kube_api.url, "namespace": "default",
                                          "progress_deadline_seconds": 5},
                           "GATE_PROMETHEUS_URL": prometheus.url, "GATE_PROMETHEUS_WINDOW": 10}
    runtime_cache_clear()
    yield kube_api
    runtime_cache_clear()


def canary_at_first_step(k8s, make_project, user):
    project = make_project(runtime="kubernetes", router="nginx", image_template="registry.example.com/hello:{sha}",
                           probe_period_seconds=0.1, watch_seconds=0,
                           strategy={"steps": [{"weight": 10, "wait": 20}]},
                           gates={"error_rate": True, "latency": True, "interval": 2, "failures": 2})
    assert rollout_drive(deployment_request(project=project, sha="a" * 40, actor=user)).state == State.SUCCEEDED
    d = deployment_request(project=project, sha="b" * 40, actor=user)
    end = time.monotonic() + 30
    while time.monotonic() < end:  # the fake's pods become ready on their own
        d = rollout_drive_until_wait(d)
        if d.state == State.SWITCHING and "applied_step" in d.progress:
            break
        time.sleep(0.05)
    assert d.state == State.SWITCHING, d.failure_reason
    ann = k8s.get("ingresses", "default", "hello-canary")["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/canary-weight"] == "10"
    return project, d


class Clock:
    def __init__(self):
        self.now = timezone.now()

    def __call__(self):
        return self.now


def serve(prometheus, clock, *, seconds, canary_errors, canary_latency, d):
    """`seconds` of traffic, one scrape a second: 20 rps on the canary, 180 on the stable;
    the engine is driven after each."""
    for _ in range(seconds):
        clock.now += timedelta(seconds=1)
        t = clock.now.timestamp()
        for labels, rps, errors, latency in ((CANARY, 20, canary_errors, canary_latency), (STABLE, 180, 0, 0.05)):
            prometheus.count(REQUESTS, {**labels, "status": "200"}, t, rps - errors)
            prometheus.count(REQUESTS, {**labels, "status": "500"}, t, errors)
            for le in ("0.1", "0.5", "1", "+Inf"):
                prometheus.count(BUCKETS, {**labels, "le": le}, t, rps if float(le) >= latency else 0)
        d = rollout_drive_until_wait(d)
        if d.is_final:
            break
    return d


def test_the_gate_reads_prometheus_and_rolls_a_failing_canary_back(k8s, make_project, user, prometheus,
                                                                    monkeypatch):
    project, d = canary_at_first_step(k8s, make_project, user)
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    d = serve(prometheus, clock, seconds=15, canary_errors=4, canary_latency=0.05, d=d)
    assert d.state == State.FAILED
    assert d.failure_reason.startswith("Gate failed: error rate 20.0% (stable 0.0%) over 10 s, threshold 2%")
    # Weights back on the stable revision; the canary's weight is zero.
    assert k8s.get("services", "default", "hello")["spec"]["selector"]["switchback.dev/revision"] == "1"
    canary_ingress = k8s.get("ingresses", "default", "hello-canary")
    assert canary_ingress is None or \
        canary_ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] == "0"
    # The gate asked with the canary's and the stable's names, inside the quotes only.
    assert any('service="hello-r2"' in q and 'ingress="hello-canary"' in q for q in prometheus.queries)
    assert any('service="hello"' in q and 'ingress="hello"' in q for q in prometheus.queries)


def test_a_slow_canary_fails_the_p95_gate_from_prometheus(k8s, make_project, user, prometheus, monkeypatch):
    project, d = canary_at_first_step(k8s, make_project, user)
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    d = serve(prometheus, clock, seconds=15, canary_errors=0, canary_latency=0.8, d=d)
    assert d.state == State.FAILED
    assert "p95 " in d.failure_reason and "(stable 95 ms)" in d.failure_reason, d.failure_reason


def test_a_healthy_canary_is_promoted_by_its_gate(k8s, make_project, user, prometheus, monkeypatch):
    project, d = canary_at_first_step(k8s, make_project, user)
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    d = serve(prometheus, clock, seconds=30, canary_errors=0, canary_latency=0.05, d=d)
    assert d.state == State.SUCCEEDED, d.failure_reason
    assert k8s.get("services", "default", "hello")["spec"]["selector"]["switchback.dev/revision"] == "2"
    passed = DeploymentEvent.objects.filter(deployment=d, message__startswith="Gate passed").first()
    assert passed is not None and "error rate 0.0% (stable 0.0%)" in passed.message


def test_prometheus_down_means_wait_never_promote(k8s, make_project, user, prometheus, monkeypatch):
    project, d = canary_at_first_step(k8s, make_project, user)
    prometheus.server.shutdown()
    prometheus.server.server_close()
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    for _ in range(30):
        clock.now += timedelta(seconds=1)
        d = rollout_drive_until_wait(d)
    assert d.state == State.SWITCHING
    assert DeploymentEvent.objects.filter(deployment=d, message__startswith="Gate waiting: Prometheus could not "
                                                                            "be read").exists()
