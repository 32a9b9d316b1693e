"""Deadlines on a controllable clock: transient faults, the keep-warm window, slow starts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments import engine
from deployments.errors import TransientError
from deployments.lifecycle import revision_plan
from deployments.models import Deployment, Project, State
from deployments.reconciler import reconcile_project
from deployments.runtimes.base import HealthState, RevisionHealth
from deployments.services import deployment_request, deployment_rollback, outbox_sweep
from tests.rollout import rollout_drive_until_wait

from .interleave import Clock

pytestmark = pytest.mark.django_db

drive = rollout_drive_until_wait


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(timezone.now())
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def project(make_project, memory_runtime):
    return make_project(keep_warm_seconds=600, watch_seconds=0)


def _step_transient(deployment) -> None:
    with pytest.raises(TransientError):
        engine.rollout_step(deployment_id=deployment.pk)


# --- transient faults ----------------------------------------------------------------------


def test_a_fault_that_stays_transient_fails_at_the_phase_deadline_and_the_next_deploy_proceeds(
        project, user, memory_runtime, clock, settings):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "TRANSIENT_DEADLINES": {"building": 120},
                           "TRANSIENT_MAX_ATTEMPTS": 1000}
    memory_runtime.transient_build["b" * 40] = "git host unreachable: connection timed out"
    stuck = deployment_request(project=project, sha="b" * 40, actor=user)
    engine.rollout_step(deployment_id=stuck.pk)  # queued -> building
    _step_transient(stuck)
    clock.advance(119)
    _step_transient(stuck)  # still inside the deadline: retried
    stuck.refresh_from_db()
    assert stuck.state == State.BUILDING
    clock.advance(2)
    assert engine.rollout_step(deployment_id=stuck.pk) is None
    stuck.refresh_from_db()
    assert stuck.state == State.FAILED
    assert "git host unreachable: connection timed out" in stuck.failure_reason
    assert "giving up" in stuck.failure_reason
    following = drive(deployment_request(project=Project.objects.get(pk=project.pk), sha="c" * 40, actor=user))
    assert following.state == State.SUCCEEDED


def test_the_sweep_does_not_reset_the_attempt_count(project, user, memory_runtime, settings):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "TRANSIENT_MAX_ATTEMPTS": 3}
    memory_runtime.transient_build["b" * 40] = 'engine 500: invalid reference format'
    stuck = deployment_request(project=project, sha="b" * 40, actor=user)
    engine.rollout_step(deployment_id=stuck.pk)
    for _ in range(2):
        _step_transient(stuck)
        # The sweep hands the stalled rollout out again, with a fresh token (a new task,
        # whose Celery retry counter starts at zero).
        Deployment.objects.filter(pk=stuck.pk).update(enqueued_at=None)
        assert outbox_sweep() == 1
    assert engine.rollout_step(deployment_id=stuck.pk) is None
    stuck.refresh_from_db()
    assert stuck.state == State.FAILED and "invalid reference format" in stuck.failure_reason


def test_a_step_that_recovers_starts_counting_afresh(project, user, memory_runtime, settings):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "TRANSIENT_MAX_ATTEMPTS": 2}
    memory_runtime.transient_build["b" * 40] = "registry timeout"
    d = deployment_request(project=project, sha="b" * 40, actor=user)
    engine.rollout_step(deployment_id=d.pk)
    _step_transient(d)
    del memory_runtime.transient_build["b" * 40]
    assert drive(d).state == State.SUCCEEDED
    assert engine.Progress.of(d).transient_count == 0


# --- keep_warm_seconds has no cap --------------------------------------------------------------


def test_after_200_rollbacks_keep_warm_still_holds(project, user, memory_runtime, clock):
    for sha in ("a", "b", "c"):
        drive(deployment_request(project=Project.objects.get(pk=project.pk), sha=sha * 40, actor=user))
    # Revision 3 stops serving now; 200 rollbacks between 1 and 2 follow within its window.
    for i in range(200):
        clock.advance(1)
        rollback = drive(deployment_rollback(project=Project.objects.get(pk=project.pk), number=1 + i % 2,
                                             actor=user))
        assert rollback.state == State.SUCCEEDED
    clock.advance(600 - 200 - 5)  # revision 3 stopped serving 595 s ago: still warm
    project = Project.objects.get(pk=project.pk)
    assert "3" in revision_plan(project=project).running
    assert reconcile_project(project=project) == []
    assert ("hello", "3") in memory_runtime.running
    assert engine.revision_retire_if_unused(project=project, revision="3", drain_seconds=0) is False
    clock.advance(10)  # 605 s: now it goes cold
    actions = reconcile_project(project=project)
    assert actions == ["retired revision 3 (nothing owns it)"]
    assert ("hello", "3") not in memory_runtime.running
    assert ("hello", "1") in memory_runtime.running and ("hello", "2") in memory_runtime.running
    assert reconcile_project(project=project) == []  # and nothing is retired twice


# --- the start deadline ------------------------------------------------------------------------


def test_an_app_ready_after_25_s_goes_live_with_a_60_s_ready_timeout(project, user, memory_runtime, clock,
                                                                     monkeypatch):
    Project.objects.filter(pk=project.pk).update(ready_timeout_seconds=60)
    drive(deployment_request(project=Project.objects.get(pk=project.pk), sha="a" * 40, actor=user))
    started = clock()

    def booting(project, revision):
        if revision == "2" and clock() - started < timedelta(seconds=25):
            return RevisionHealth(HealthState.STARTING, 0, 1, "readiness /readyz returned 503 (12 times)")
        return RevisionHealth(HealthState.READY, 1, 1)

    monkeypatch.setattr(memory_runtime, "revision_health", booting)
    d = deployment_request(project=Project.objects.get(pk=project.pk), sha="b" * 40, actor=user)
    for _ in range(30):
        delay = engine.rollout_step(deployment_id=d.pk)
        if delay is None:
            break
        clock.advance(max(delay, 1.0))
    d.refresh_from_db()
    assert d.state == State.SUCCEEDED, d.failure_reason
    assert timedelta(seconds=25) <= d.ready_at - started < timedelta(seconds=60)
    assert memory_runtime.weights["hello"] == {"2": 100}


def test_an_app_never_ready_fails_at_the_ready_timeout_not_before(project, user, memory_runtime, clock):
    Project.objects.filter(pk=project.pk).update(ready_timeout_seconds=60)
    drive(deployment_request(project=Project.objects.get(pk=project.pk), sha="a" * 40, actor=user))
    memory_runtime.health[("hello", "2")] = RevisionHealth(HealthState.STARTING, 0, 1,
                                                           "readiness /readyz returned 503")
    d = drive(deployment_request(project=Project.objects.get(pk=project.pk), sha="b" * 40, actor=user))
    clock.advance(59)
    assert drive(d).state == State.VERIFYING
    clock.advance(2)
    d = drive(d)
    assert d.state == State.FAILED and "not ready within 60s" in d.failure_reason
    assert memory_runtime.weights["hello"] == {"1": 100}
