"""Races between rollouts, rollbacks, the reconciler, promote and abort, interleaved
deterministically (barriers and lock waits, see interleave.py) against the in-memory
runtime.  After each: the database, the runtime's routes and the history agree, nothing
serving was removed, and the end state is the later request.
"""

from __future__ import annotations

import pytest

from deployments import engine
from deployments.errors import Conflict
from deployments.models import Deployment, Project, State
from deployments.reconciler import reconcile_project
from deployments.runtimes.base import HealthState, RevisionHealth
from deployments.services import (
    deployment_abort,
    deployment_promote,
    deployment_request,
    deployment_rollback,
)
from tests.rollout import rollout_drive_until_wait

from .interleave import Gate, Worker, assert_agree, wait_until_blocked_on_a_lock

pytestmark = pytest.mark.django_db(transaction=True)

drive = rollout_drive_until_wait


@pytest.fixture
def project(make_project, memory_runtime):
    return make_project(keep_warm_seconds=600, watch_seconds=0)


@pytest.fixture
def three_live(project, user, memory_runtime):
    """#1, #2, #3 went live in turn; all three revisions still run (warm)."""
    for sha in ("a", "b", "c"):
        assert drive(deployment_request(project=project, sha=sha * 40, actor=user)).state == State.SUCCEEDED
    assert memory_runtime.weights["hello"] == {"3": 100}
    return Project.objects.get(pk=project.pk)


def _fresh(project):
    return Project.objects.get(pk=project.pk)


# --- two rollbacks at once, to different revisions ------------------------------------------


def test_two_rollbacks_the_later_waits_for_the_earlier_switch(three_live, user, memory_runtime):
    """R1 is inside its switch (it has won, traffic is moving) when R2 starts: R2 waits for
    the project's lock, then goes live.  The earlier rollback is never undone halfway."""
    r1 = deployment_rollback(project=three_live, number=1, actor=user)
    r2 = deployment_rollback(project=_fresh(three_live), number=2, actor=user)
    gate = Gate(when=lambda weights, **_: weights == {"1": 100})
    memory_runtime.hooks["set_traffic"] = gate
    first = Worker("r1", lambda: drive(r1))
    first.start()
    gate.wait_reached()
    second = Worker("r2", lambda: drive(r2))
    second.start()
    wait_until_blocked_on_a_lock(second)
    gate.open()
    assert first.finish().state == State.SUCCEEDED
    assert second.finish().state == State.SUCCEEDED
    assert_agree(three_live, memory_runtime)
    assert _fresh(three_live).live_deployment == r2
    assert ("hello", "1") in memory_runtime.running  # the earlier target stays warm


def test_two_rollbacks_the_preempted_one_never_moves_traffic(three_live, user, memory_runtime, monkeypatch):
    """R1 has reached switching but not yet switched when R2 preempts it.  R1's switch
    then loses its compare-and-set: it moves no traffic and retires nothing.  (On `main`,
    R1 set traffic before its compare-and-set, and R2 then retired R1's revision while all
    traffic went to it.)"""
    r1 = deployment_rollback(project=three_live, number=1, actor=user)
    r2 = deployment_rollback(project=_fresh(three_live), number=2, actor=user)
    gate = Gate()
    real_go_live = engine._go_live

    def go_live_after_the_gate(deployment):
        if deployment.pk == r1.pk:
            gate()
        return real_go_live(deployment)

    monkeypatch.setattr(engine, "_go_live", go_live_after_the_gate)
    before = len(memory_runtime.calls)
    first = Worker("r1", lambda: drive(r1))
    first.start()
    gate.wait_reached()  # R1: switching committed, its switch not attempted yet
    assert drive(r2).state == State.SUCCEEDED
    gate.open()
    r1 = first.finish()
    assert r1.state == State.CANCELLED and "Preempted by rollback" in r1.failure_reason
    assert [c[2] for c in memory_runtime.calls[before:] if c[0] == "traffic"] == [{"2": 100}]
    assert_agree(three_live, memory_runtime)
    assert _fresh(three_live).live_deployment == r2


def test_an_older_rollback_yields_to_a_newer_one_already_under_way(three_live, user, memory_runtime):
    r1 = deployment_rollback(project=three_live, number=1, actor=user)
    r2 = deployment_rollback(project=_fresh(three_live), number=2, actor=user)
    assert drive(r2).state == State.SUCCEEDED  # the later request's worker ran first
    r1 = drive(r1)
    assert r1.state == State.SUPERSEDED and f"#{r2.number}" in r1.failure_reason
    assert_agree(three_live, memory_runtime)
    assert _fresh(three_live).live_deployment == r2


# --- rollback vs deploy ------------------------------------------------------------------------


def test_rollback_preempts_a_canary_whose_stale_worker_then_moves_nothing(three_live, user, memory_runtime):
    Project.objects.filter(pk=three_live.pk).update(strategy={"steps": [{"weight": 10, "wait": 60},
                                                                        {"weight": 50, "wait": 60}]})
    canary = drive(deployment_request(project=_fresh(three_live), sha="d" * 40, actor=user))
    assert canary.state == State.SWITCHING and memory_runtime.weights["hello"] == {"4": 10, "3": 90}
    stale = Deployment.objects.select_related("project", "source").get(pk=canary.pk)  # a worker mid-step
    rollback = drive(deployment_rollback(project=_fresh(three_live), number=1, actor=user))
    assert rollback.state == State.SUCCEEDED
    traffic_before = len(memory_runtime.calls)
    # The canary's worker wakes up after its wait and tries the next step, then the switch.
    engine._apply_step(stale, engine.Strategy.of(engine.RolloutConfig.of(stale)), 1, stale.created_at)
    engine._go_live(stale)
    assert [c for c in memory_runtime.calls[traffic_before:] if c[0] == "traffic"] == []
    canary.refresh_from_db()
    assert canary.state == State.CANCELLED
    assert ("hello", "4") not in memory_runtime.running  # discarded once the rollback had switched
    assert_agree(three_live, memory_runtime)


def test_a_deploy_queued_behind_a_build_does_not_undo_a_later_rollback(three_live, user, memory_runtime):
    memory_runtime.health[("hello", "4")] = RevisionHealth(HealthState.STARTING, 0, 1)
    building = drive(deployment_request(project=three_live, sha="d" * 40, actor=user))
    assert building.state == State.VERIFYING
    queued = deployment_request(project=_fresh(three_live), sha="e" * 40, actor=user)
    assert engine.rollout_step(deployment_id=queued.pk) == engine.WAIT_FOR_TURN
    rollback = drive(deployment_rollback(project=_fresh(three_live), number=1, actor=user))
    assert rollback.state == State.SUCCEEDED
    assert drive(queued).state == State.SUPERSEDED  # it would have undone the rollback
    building.refresh_from_db()
    assert building.state == State.CANCELLED
    assert_agree(three_live, memory_runtime)
    assert _fresh(three_live).live_deployment == rollback


def test_a_deploy_requested_after_a_rollback_goes_live_after_it(three_live, user, memory_runtime):
    rollback = deployment_rollback(project=three_live, number=1, actor=user)
    deploy = deployment_request(project=_fresh(three_live), sha="d" * 40, actor=user)
    # The deploy's worker starts first; the rollback (an older request) then yields.
    assert engine.rollout_step(deployment_id=deploy.pk) == engine.CONTINUE
    assert drive(rollback).state == State.SUPERSEDED
    assert drive(deploy).state == State.SUCCEEDED
    assert_agree(three_live, memory_runtime)
    assert _fresh(three_live).live_deployment == deploy


# --- rollback vs the reconciler -----------------------------------------------------------------


def test_the_reconciler_never_undoes_a_rollback_that_finished_while_it_looked(three_live, user, memory_runtime):
    """The reconciler observed the runtime (live: 3); a rollback to 1 finishes before it
    decides.  (On `main` it read the live deployment first and switched traffic back to 3.)"""
    rollback = deployment_rollback(project=three_live, number=1, actor=user)
    memory_runtime.weights["hello"] = {"3": 50, "2": 50}  # something to repair, so it acts

    def rollback_finishes(**_):
        memory_runtime.hooks.pop("observed")
        assert drive(rollback).state == State.SUCCEEDED

    memory_runtime.hooks["observed"] = rollback_finishes
    reconcile_project(project=three_live)
    assert_agree(three_live, memory_runtime)
    assert memory_runtime.weights["hello"] == {"1": 100}
    assert reconcile_project(project=three_live) == []  # converged, and quiet


def test_a_rollback_waits_for_the_reconcilers_traffic_repair(three_live, user, memory_runtime):
    rollback = deployment_rollback(project=three_live, number=1, actor=user)
    memory_runtime.weights["hello"] = {"3": 50, "2": 50}
    gate = Gate(when=lambda weights, **_: weights == {"3": 100})
    memory_runtime.hooks["set_traffic"] = gate
    reconciler = Worker("reconciler", lambda: reconcile_project(project=three_live))
    reconciler.start()
    gate.wait_reached()  # the reconciler holds the project's lock, repairing traffic
    worker = Worker("rollback", lambda: drive(rollback))
    worker.start()
    wait_until_blocked_on_a_lock(worker)
    gate.open()
    reconciler.finish()
    assert worker.finish().state == State.SUCCEEDED
    assert_agree(three_live, memory_runtime)
    assert memory_runtime.weights["hello"] == {"1": 100}


def test_the_reconciler_restarts_a_dead_live_revision_while_a_rollout_is_stuck(three_live, user, memory_runtime):
    memory_runtime.transient_build["d" * 40] = "git host unreachable"
    stuck = deployment_request(project=three_live, sha="d" * 40, actor=user)
    with pytest.raises(engine.TransientError):
        drive(stuck)
    memory_runtime.running.pop(("hello", "3"))  # the live revision's containers died
    actions = reconcile_project(project=three_live)
    assert "started live revision 3 again (it was not running)" in actions
    assert ("hello", "3") in memory_runtime.running


# --- promote vs step ------------------------------------------------------------------------------


def test_promote_waits_for_a_step_being_applied_then_ends_that_steps_wait(three_live, user, memory_runtime):
    Project.objects.filter(pk=three_live.pk).update(strategy={"steps": [{"weight": 10, "wait": None},
                                                                        {"weight": 50, "wait": None}]})
    canary = drive(deployment_request(project=_fresh(three_live), sha="d" * 40, actor=user))
    assert memory_runtime.weights["hello"] == {"4": 10, "3": 90}
    deployment_promote(project=three_live, number=canary.number, actor=user)
    gate = Gate(when=lambda weights, **_: weights == {"4": 50, "3": 50})
    memory_runtime.hooks["set_traffic"] = gate
    stepper = Worker("step", lambda: drive(canary))
    stepper.start()
    gate.wait_reached()  # step 2 is being applied under the project's lock
    promoter = Worker("promote", lambda: deployment_promote(project=three_live, number=canary.number, actor=user))
    promoter.start()
    wait_until_blocked_on_a_lock(promoter)
    gate.open()
    stepper.finish()
    promoter.finish()  # it promoted step 2, the one waiting when it got the lock
    assert drive(canary).state == State.SUCCEEDED
    traffic = [c[2] for c in memory_runtime.calls if c[0] == "traffic"]
    assert traffic[-3:] == [{"4": 10, "3": 90}, {"4": 50, "3": 50}, {"4": 100}]  # no step skipped or repeated
    assert_agree(three_live, memory_runtime)


def test_a_duplicate_step_chain_after_promote_applies_each_step_once(three_live, user, memory_runtime):
    Project.objects.filter(pk=three_live.pk).update(strategy={"steps": [{"weight": 10, "wait": None},
                                                                        {"weight": 50, "wait": None}]})
    canary = drive(deployment_request(project=_fresh(three_live), sha="d" * 40, actor=user))
    deployment_promote(project=three_live, number=canary.number, actor=user)
    drive(canary)
    drive(canary)  # the chain the promote retired, woken late
    traffic = [c[2] for c in memory_runtime.calls if c[0] == "traffic"]
    assert traffic[-2:] == [{"4": 10, "3": 90}, {"4": 50, "3": 50}]
    canary.refresh_from_db()
    assert canary.state == State.SWITCHING
    assert engine.Progress.of(canary).step == 1  # held at step 2, not promoted past it


# --- abort vs switch ----------------------------------------------------------------------------


def test_abort_during_the_switch_finds_it_finished(three_live, user, memory_runtime):
    Project.objects.filter(pk=three_live.pk).update(strategy={"steps": [{"weight": 10, "wait": None}]})
    canary = drive(deployment_request(project=_fresh(three_live), sha="d" * 40, actor=user))
    deployment_promote(project=three_live, number=canary.number, actor=user)
    gate = Gate(when=lambda weights, **_: weights == {"4": 100})
    memory_runtime.hooks["set_traffic"] = gate
    switcher = Worker("switch", lambda: drive(canary))
    switcher.start()
    gate.wait_reached()  # the switch has won and is moving traffic
    aborter = Worker("abort", lambda: deployment_abort(project=three_live, number=canary.number, actor=user))
    aborter.start()
    wait_until_blocked_on_a_lock(aborter)
    gate.open()
    assert switcher.finish().state == State.SUCCEEDED
    with pytest.raises(Conflict, match="before it could be aborted"):
        aborter.finish()
    assert_agree(three_live, memory_runtime)
    assert _fresh(three_live).live_deployment == canary


def test_abort_first_then_the_switch_loses(three_live, user, memory_runtime):
    Project.objects.filter(pk=three_live.pk).update(strategy={"steps": [{"weight": 10, "wait": None}]})
    canary = drive(deployment_request(project=_fresh(three_live), sha="d" * 40, actor=user))
    stale = Deployment.objects.select_related("project", "source").get(pk=canary.pk)
    deployment_abort(project=three_live, number=canary.number, actor=user)
    assert memory_runtime.weights["hello"] == {"3": 100}
    engine._go_live(stale)  # a worker that had decided to switch before the abort
    assert memory_runtime.weights["hello"] == {"3": 100}
    canary.refresh_from_db()
    assert canary.state == State.FAILED and canary.failure_reason.startswith("Aborted by")
    assert ("hello", "4") not in memory_runtime.running
    assert_agree(three_live, memory_runtime)
