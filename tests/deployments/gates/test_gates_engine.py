"""Gates in the engine and the watch window, on the in-memory runtime, with a controllable
clock: the router's counters are what the test says, the time is what the test says."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments import watch
from deployments.models import Deployment, DeploymentEvent, Project, State
from deployments.services import deployment_request
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db
GATES = {"error_rate": True, "latency": True, "interval": 1, "failures": 2, "min_requests": 20}


class Clock:
    def __init__(self):
        self.now = timezone.now()

    def __call__(self):
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def project(make_project, memory_runtime, user):
    project = make_project(keep_warm_seconds=300, watch_seconds=0)
    assert rollout_drive_until_wait(deployment_request(project=project, sha="a" * 40, actor=user)).state == \
        State.SUCCEEDED
    memory_runtime.counters = {}  # the router counts from now on
    return project


def canary(project, user, *, strategy, gates=GATES, watch_seconds=0):
    Project.objects.filter(pk=project.pk).update(strategy=strategy, gates=gates, watch_seconds=watch_seconds)
    project.refresh_from_db()
    return rollout_drive_until_wait(deployment_request(project=project, sha="b" * 40, actor=user))


def gate_messages(deployment):
    return list(DeploymentEvent.objects.filter(deployment=deployment, kind=DeploymentEvent.Kind.GATE)
                .order_by("pk").values_list("message", flat=True))


def test_a_failing_canary_is_rolled_back_after_the_consecutive_failures(project, user, memory_runtime, clock):
    d = canary(project, user, strategy={"steps": [{"weight": 10, "wait": 60}, {"weight": 50, "wait": 60}]})
    assert d.state == State.SWITCHING and memory_runtime.weights["hello"] == {"2": 10, "1": 90}
    for expected in (State.SWITCHING, State.FAILED):  # the first failure counts, the second acts
        memory_runtime.count("hello", "2", requests=100, errors=20)
        memory_runtime.count("hello", "1", requests=900, errors=1)
        clock.tick(1)
        d = rollout_drive_until_wait(d)
        assert d.state == expected
    assert memory_runtime.weights["hello"] == {"1": 100}
    assert ("hello", "2") not in memory_runtime.running  # retired as any failed rollout
    assert d.failure_reason == "Gate failed: error rate 20.0% (stable 0.1%) over 1 s, threshold 2%"
    messages = gate_messages(d)
    assert messages[-2].endswith("(1 of 2 failed checks in a row before rolling back.)")
    assert messages[-1].endswith("threshold 2%; rolling back.")


def test_one_failure_then_a_pass_does_not_act(project, user, memory_runtime, clock):
    d = canary(project, user, strategy={"steps": [{"weight": 10, "wait": 60}]})
    for errors in (20, 0, 20, 0, 20):
        memory_runtime.count("hello", "2", requests=100, errors=errors)
        memory_runtime.count("hello", "1", requests=900)
        clock.tick(1)
        d = rollout_drive_until_wait(d)
    assert d.state == State.SWITCHING and memory_runtime.weights["hello"] == {"2": 10, "1": 90}


def test_too_little_traffic_waits_and_never_promotes(project, user, memory_runtime, clock):
    d = canary(project, user, strategy={"steps": [{"weight": 10, "wait": 5}]})
    for i in range(30):  # 30 s, far past the step's 5 s wait: 15 requests, never enough in any window
        memory_runtime.count("hello", "2", requests=i % 2)
        memory_runtime.count("hello", "1", requests=9)
        clock.tick(1)
        d = rollout_drive_until_wait(d)
    assert d.state == State.SWITCHING and memory_runtime.weights["hello"] == {"2": 10, "1": 90}
    assert any(m.startswith("Gate waiting: Too little traffic to judge") for m in gate_messages(d))
    # Once the window has gathered enough requests it is judged (and passes): the step moves on.
    memory_runtime.count("hello", "2", requests=5)
    clock.tick(1)
    d = rollout_drive_until_wait(d)
    assert d.state == State.SUCCEEDED and memory_runtime.weights["hello"] == {"2": 100}
    assert any(m.startswith("Gate passed: error rate 0.0% (stable 0.0%)") for m in gate_messages(d))


def test_a_healthy_canary_is_promoted_on_schedule(project, user, memory_runtime, clock):
    d = canary(project, user, strategy={"steps": [{"weight": 10, "wait": 3}, {"weight": 50, "wait": 3}]})
    for _ in range(10):
        memory_runtime.count("hello", "2", requests=50, latency_ms=40)
        memory_runtime.count("hello", "1", requests=450, latency_ms=35)
        clock.tick(1)
        d = rollout_drive_until_wait(d)
    assert d.state == State.SUCCEEDED and memory_runtime.weights["hello"] == {"2": 100}
    traffic = [c[2] for c in memory_runtime.calls if c[0] == "traffic"]
    assert traffic[-3:] == [{"2": 10, "1": 90}, {"2": 50, "1": 50}, {"2": 100}]


def test_slow_canary_fails_the_latency_gate(project, user, memory_runtime, clock):
    d = canary(project, user, strategy={"steps": [{"weight": 10, "wait": 60}]})
    for _ in range(3):
        memory_runtime.count("hello", "2", requests=50, latency_ms=900)
        memory_runtime.count("hello", "1", requests=450, latency_ms=100)
        clock.tick(1)
        d = rollout_drive_until_wait(d)
    assert d.state == State.FAILED
    assert d.failure_reason == "Gate failed: p95 900 ms (stable 100 ms) over 1 s, threshold 2x the stable's"


def test_a_held_split_is_watched_too(project, user, memory_runtime, clock):
    d = canary(project, user, strategy={"steps": [{"weight": 10, "wait": None}]})
    for _ in range(3):
        memory_runtime.count("hello", "2", requests=100, errors=50)
        memory_runtime.count("hello", "1", requests=900)
        clock.tick(1)
        d = rollout_drive_until_wait(d)
    assert d.state == State.FAILED and memory_runtime.weights["hello"] == {"1": 100}


def test_without_gates_nothing_is_measured(project, user, memory_runtime, clock):
    d = canary(project, user, strategy={"steps": [{"weight": 10, "wait": 2}]}, gates={})
    memory_runtime.count("hello", "2", requests=100, errors=100)
    clock.tick(3)
    assert rollout_drive_until_wait(d).state == State.SUCCEEDED
    assert not gate_messages(d)


def test_the_watch_window_gate_rolls_back_after_the_switch(project, user, memory_runtime, clock):
    d = canary(project, user, strategy={}, watch_seconds=60)
    assert d.state == State.SUCCEEDED and memory_runtime.weights["hello"] == {"2": 100}
    for _ in range(4):
        memory_runtime.count("hello", "2", requests=100, errors=10)
        clock.tick(1)
        if watch.rollout_watch_step(deployment_id=d.pk) is None:
            break
    d.refresh_from_db()
    assert d.state == State.FAILED
    assert "Gate failed in the watch window: error rate 10.0% (stable: no traffic) over 1 s, threshold 2%" \
        in d.failure_reason
    rollback = Deployment.objects.get(project=project, number=3)
    assert rollback.trigger == "rollback" and rollback.rollback_of.number == 1
