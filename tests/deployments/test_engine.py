"""The rollout engine against the in-memory runtime: phases, failures, rollbacks, canaries."""

import pytest
from django.utils import timezone

from deployments import engine, watch
from deployments.models import Deployment, Project, State
from deployments.reconciler import reconcile_project
from deployments.runtimes.base import HealthState, LivenessFailure, RevisionHealth
from deployments.services import deployment_request, deployment_rollback
from tests.rollout import retire_after_warm_window, rollout_drive_until_wait

pytestmark = pytest.mark.django_db


drive = rollout_drive_until_wait


@pytest.fixture
def project(make_project, memory_runtime):
    return make_project(keep_warm_seconds=300, watch_seconds=0)


def deploy(project, user, sha):
    return drive(deployment_request(project=project, sha=sha, actor=user))


def test_first_deploy_goes_through_every_phase(project, user, memory_runtime):
    d = deploy(project, user, "a" * 40)
    assert d.state == State.SUCCEEDED
    assert d.image == "hello:" + "a" * 40 and d.image_digest
    assert d.started_at <= d.built_at <= d.ready_at <= d.live_at == d.finished_at
    assert memory_runtime.weights["hello"] == {"1": 100}
    project.refresh_from_db()
    assert project.live_deployment == d
    phases = [e.message for e in d.events.filter(kind="phase")]
    assert phases[0].startswith("Queued") and phases[1:] == ["Building.", "Starting.", "Verifying.",
                                                               "Switching.", "Succeeded."]
    assert any("building hello" in e.message for e in d.events.filter(kind="log"))


def test_a_deploy_naming_only_a_sha_shows_the_commits_message_and_author(project, user, memory_runtime):
    memory_runtime.commits["a" * 40] = ("Fix the login page\n\nbody", "Ada")
    memory_runtime.commits["b" * 40] = ("From the repository", "Grace")
    d = deploy(project, user, "a" * 40)
    assert (d.message, d.author) == ("Fix the login page\n\nbody", "Ada")
    d.refresh_from_db()
    assert (d.message, d.author) == ("Fix the login page\n\nbody", "Ada")
    # A message given with the deploy is kept.
    given = drive(deployment_request(project=project, sha="b" * 40, actor=user, message="Hotfix"))
    given.refresh_from_db()
    assert given.message == "Hotfix" and given.author == "Grace"


def test_second_deploy_switches_and_keeps_the_old_one_warm(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    d2 = deploy(project, user, "b" * 40)
    assert d2.state == State.SUCCEEDED
    assert memory_runtime.weights["hello"] == {"2": 100}
    assert ("hello", "1") in memory_runtime.running  # warm for an instant rollback
    # Retirement after the keep-warm window spares the live revision and retires the old one.
    assert retire_after_warm_window(project=project, revision="2") is False
    assert retire_after_warm_window(project=project, revision="1") is True
    assert ("hello", "1") not in memory_runtime.running
    assert Deployment.objects.get(number=1).retired_at is not None


def test_warm_rollback_changes_only_the_weights_and_never_rebuilds(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    deploy(project, user, "b" * 40)
    builds = list(memory_runtime.builds)
    rollback = drive(deployment_rollback(project=project, number=1, actor=user))
    assert rollback.state == State.SUCCEEDED and rollback.trigger == "rollback"
    assert rollback.revision == "1" and rollback.image == "hello:" + "a" * 40
    assert memory_runtime.builds == builds  # no rebuild
    assert memory_runtime.weights["hello"] == {"1": 100}
    project.refresh_from_db()
    assert project.live_deployment == rollback
    assert rollback.events.filter(kind="phase", message="Building.").count() == 0


def test_cold_rollback_starts_the_stored_image(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    deploy(project, user, "b" * 40)
    retire_after_warm_window(project=project, revision="1")
    rollback = drive(deployment_rollback(project=project, number=1, actor=user))
    assert rollback.state == State.SUCCEEDED
    assert ("start", "hello", "1") in memory_runtime.calls[-4:]
    assert memory_runtime.running[("hello", "1")].image == "hello:" + "a" * 40
    assert memory_runtime.builds == ["a" * 40, "b" * 40]


def test_build_failure_fails_with_the_reason_and_moves_no_traffic(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    memory_runtime.fail_build["c" * 40] = "step 2 RUN make exited 2"
    d = deploy(project, user, "c" * 40)
    assert d.state == State.FAILED
    assert "step 2 RUN make exited 2" in d.failure_reason
    assert memory_runtime.weights["hello"] == {"1": 100}
    project.refresh_from_db()
    assert project.live_deployment.number == 1


def test_never_ready_revision_fails_at_its_deadline_and_is_removed(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    memory_runtime.health[("hello", "2")] = RevisionHealth(HealthState.STARTING, 0, 1,
                                                           "readiness /readyz returned 503")
    d = drive(deployment_request(project=project, sha="b" * 40, actor=user))
    assert d.state == State.VERIFYING  # still inside its deadline: probing again later
    Deployment.objects.filter(pk=d.pk).update(progress={**d.progress, "ready_deadline": timezone.now().isoformat()})
    d = drive(d)
    assert d.state == State.FAILED
    assert "not ready within 120s" in d.failure_reason and "503" in d.failure_reason
    assert ("hello", "2") not in memory_runtime.running
    assert memory_runtime.weights["hello"] == {"1": 100}


def test_failed_probes_fail_fast(project, user, memory_runtime):
    memory_runtime.health[("hello", "1")] = RevisionHealth(HealthState.FAILED, 0, 1, "container exited with 1")
    d = deploy(project, user, "a" * 40)
    assert d.state == State.FAILED and "container exited with 1" in d.failure_reason
    assert "hello" not in memory_runtime.weights


def test_one_rollout_per_project_at_a_time(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    memory_runtime.health[("hello", "2")] = RevisionHealth(HealthState.STARTING, 0, 1)
    d2 = drive(deployment_request(project=project, sha="b" * 40, actor=user))
    assert d2.state == State.VERIFYING
    d3 = deployment_request(project=project, sha="c" * 40, actor=user)
    assert engine.rollout_step(deployment_id=d3.pk) == engine.WAIT_FOR_TURN
    d3.refresh_from_db()
    assert d3.state == State.QUEUED


def test_rollback_preempts_an_inflight_rollout(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    deploy(project, user, "b" * 40)
    memory_runtime.health[("hello", "3")] = RevisionHealth(HealthState.STARTING, 0, 1)
    d3 = drive(deployment_request(project=project, sha="c" * 40, actor=user))
    assert d3.state == State.VERIFYING
    rollback = drive(deployment_rollback(project=project, number=1, actor=user))
    d3.refresh_from_db()
    assert d3.state == State.CANCELLED and "Preempted by rollback #4" in d3.failure_reason
    assert rollback.state == State.SUCCEEDED
    assert memory_runtime.weights["hello"] == {"1": 100}
    assert ("hello", "3") not in memory_runtime.running


def test_canary_steps_then_full_switch(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    Project.objects.filter(pk=project.pk).update(
        strategy={"steps": [{"weight": 10, "wait": 0}, {"weight": 50, "wait": 0}]})
    project.refresh_from_db()
    d = deploy(project, user, "b" * 40)
    traffic = [c[2] for c in memory_runtime.calls if c[0] == "traffic"]
    assert traffic[-3:] == [{"2": 10, "1": 90}, {"2": 50, "1": 50}, {"2": 100}]
    assert d.state == State.SUCCEEDED


def test_held_split_waits_for_promotion(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    Project.objects.filter(pk=project.pk).update(strategy={"steps": [{"weight": 10, "wait": None}]})
    project.refresh_from_db()
    d = deploy(project, user, "b" * 40)
    assert d.state == State.SWITCHING and memory_runtime.weights["hello"] == {"2": 10, "1": 90}
    assert drive(d).state == State.SWITCHING  # still held
    engine.rollout_promote(deployment=d)
    assert drive(d).state == State.SUCCEEDED
    assert memory_runtime.weights["hello"] == {"2": 100}


def test_liveness_failure_inside_the_watch_window_rolls_back(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    Project.objects.filter(pk=project.pk).update(watch_seconds=60)
    project.refresh_from_db()
    d2 = deploy(project, user, "b" * 40)
    assert d2.state == State.SUCCEEDED
    assert watch.rollout_watch_step(deployment_id=d2.pk) == 1.0  # healthy so far
    memory_runtime.liveness_failures = [LivenessFailure("2", "replica 0: liveness /healthz timed out; restarted")]
    assert watch.rollout_watch_step(deployment_id=d2.pk) is None
    d2.refresh_from_db()
    assert d2.state == State.FAILED and "liveness /healthz timed out" in d2.failure_reason
    rollback = Deployment.objects.get(number=3)
    assert rollback.trigger == "rollback" and rollback.rollback_of.number == 1
    assert drive(rollback).state == State.SUCCEEDED
    assert memory_runtime.weights["hello"] == {"1": 100}


def test_a_stale_task_token_does_nothing(project, user, memory_runtime):
    from deployments.tasks import rollout_advance

    d = deployment_request(project=project, sha="a" * 40, actor=user)
    Deployment.objects.filter(pk=d.pk).update(step_token="current")
    rollout_advance.apply(args=[d.pk, "old"])
    d.refresh_from_db()
    assert d.state == State.QUEUED and memory_runtime.calls == []


def test_reconciler_removes_orphans_and_restores_live_weights(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    from deployments.runtimes.base import RevisionSpec

    memory_runtime.start_revision(spec=RevisionSpec(project="hello", revision="99", image="x"))
    memory_runtime.weights["hello"] = {"1": 50, "99": 50}  # a worker died mid-canary
    actions = reconcile_project(project=project)
    assert ("hello", "99") not in memory_runtime.running
    assert memory_runtime.weights["hello"] == {"1": 100}
    assert any("retired revision 99" in a for a in actions)
    assert reconcile_project(project=project) == []  # converged


def test_liveness_outside_rollouts_restarts_and_records_on_the_live_deployment(project, user, memory_runtime):
    d1 = deploy(project, user, "a" * 40)
    memory_runtime.liveness_failures = [LivenessFailure("1", "replica 0: container exited with 137; restarted")]
    messages = watch.liveness_check(project=Project.objects.get(pk=project.pk))
    assert messages == ["Liveness failed on revision 1: replica 0: container exited with 137; restarted"]
    assert d1.events.filter(kind="probe", message__contains="exited with 137").exists()
    d1.refresh_from_db()
    assert d1.state == State.SUCCEEDED  # outside the watch window: restarted, not rolled back


def test_reconciler_starts_a_live_revision_that_vanished_then_routes_to_it(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    memory_runtime.reset()  # the host restarted: nothing runs
    assert reconcile_project(project=project) == ["started live revision 1 again (it was not running)"]
    assert memory_runtime.running[("hello", "1")].image == "hello:" + "a" * 40
    assert reconcile_project(project=project) == ["traffic: 100% to live revision 1 (was none)"]
    assert memory_runtime.weights["hello"] == {"1": 100}


def test_rollback_skips_canary_steps(project, user, memory_runtime):
    deploy(project, user, "a" * 40)
    deploy(project, user, "b" * 40)
    Project.objects.filter(pk=project.pk).update(strategy={"steps": [{"weight": 10, "wait": None}]})
    retire_after_warm_window(project=project, revision="1")  # cold target
    rollback = drive(deployment_rollback(project=Project.objects.get(pk=project.pk), number=1, actor=user))
    assert rollback.state == State.SUCCEEDED
    assert memory_runtime.weights["hello"] == {"1": 100}
    assert not [c for c in memory_runtime.calls if c[0] == "traffic" and c[2] == {"1": 10, "2": 90}]


@pytest.mark.django_db(transaction=True)
def test_a_long_step_keeps_its_outbox_mark_fresh(project, user, memory_runtime, monkeypatch):
    """A silent build must not look stalled to the sweep (which would start a second chain)."""
    import time as _time

    from deployments import tasks

    monkeypatch.setattr(tasks, "HEARTBEAT_SECONDS", 0.1)
    d = deployment_request(project=project, sha="a" * 40, actor=user)
    Deployment.objects.filter(pk=d.pk).update(enqueued_at=None)
    with tasks._heartbeat(d.pk):
        _time.sleep(0.5)  # the step is busy
        d.refresh_from_db()
        assert d.enqueued_at is not None


def test_rollback_to_what_already_serves_is_refused(project, user, memory_runtime):
    from deployments.errors import Conflict

    deploy(project, user, "a" * 40)
    deploy(project, user, "b" * 40)
    drive(deployment_rollback(project=project, number=1, actor=user))  # #3 serves revision 1
    with pytest.raises(Conflict, match="already live"):
        deployment_rollback(project=Project.objects.get(pk=project.pk), number=3, actor=user)
    with pytest.raises(Conflict, match="already live"):
        deployment_rollback(project=Project.objects.get(pk=project.pk), number=1, actor=user)
    assert Deployment.objects.filter(project=project).count() == 3


def test_a_slow_booting_app_has_until_the_ready_deadline(project, user):
    """Startup probe failures during boot are not a failed deploy before ready_timeout_seconds."""
    from deployments.specs import revision_spec_for

    Project.objects.filter(pk=project.pk).update(ready_timeout_seconds=90, probe_period_seconds=2,
                                                 probe_failure_threshold=3)
    d = deployment_request(project=Project.objects.get(pk=project.pk), sha="a" * 40, actor=user)
    spec = revision_spec_for(d)
    assert spec.startup.failure_threshold * spec.startup.period_seconds >= 90
    assert spec.readiness.failure_threshold == 3  # once up, readiness still fails fast
