"""Rollback targets and retention, against the in-memory runtime: which earlier revisions are
offered (once each), in which state, and what the platform keeps for them."""

import pytest

from deployments import lifecycle
from deployments.errors import Conflict
from deployments.models import Deployment, State
from deployments.rollback_targets import rollback_targets_list
from deployments.services import deployment_request, deployment_rollback
from tests.rollout import retire_after_warm_window, rollout_drive_until_wait

pytestmark = pytest.mark.django_db

drive = rollout_drive_until_wait


@pytest.fixture
def project(make_project, memory_runtime):
    return make_project(keep_warm_seconds=300, watch_seconds=0, keep_images=3)


def sha(i: int) -> str:
    return f"{i:040x}"


def deploy_many(project, user, count: int) -> list[Deployment]:
    return [drive(deployment_request(project=project, sha=sha(i), actor=user)) for i in range(1, count + 1)]


def states(project) -> dict[int, str]:
    project.refresh_from_db()
    return {t.number: t.state for t in rollback_targets_list(project=project)}


def test_the_live_revision_and_keep_images_before_it_are_kept(project, user, memory_runtime):
    deploy_many(project, user, 6)
    type(project).objects.filter(pk=project.pk).update(keep_warm_seconds=0)  # nothing warm to spare
    project.refresh_from_db()
    assert lifecycle.revisions_kept(project=project) == ["6", "5", "4", "3"]
    # What the next build was told to keep: exactly the kept revisions' commits (and its own).
    drive(deployment_request(project=project, sha=sha(7), actor=user))
    assert memory_runtime.keep_shas[-1] == frozenset({sha(i) for i in (3, 4, 5, 6, 7)})


def test_targets_are_warm_cold_or_unavailable_with_a_reason(project, user, memory_runtime):
    deploy_many(project, user, 6)
    retire_after_warm_window(project=project, revision="4")
    retire_after_warm_window(project=project, revision="3")
    memory_runtime.pruned.add(Deployment.objects.get(number=3).image)
    project.refresh_from_db()
    targets = {t.number: t for t in rollback_targets_list(project=project)}
    assert sorted(targets) == [1, 2, 3, 4, 5]  # never the live one
    assert targets[5].state == "warm" and targets[4].state == "cold"
    assert targets[3].state == "unavailable" and "gone" in targets[3].reason
    for old in (1, 2):  # beyond keep_images: unavailable, with the reason and what to do
        assert targets[old].state == "unavailable"
        assert "keep_images" in targets[old].reason
        assert targets[old].remedy == f"Redeploy #{old} rebuilds commit {sha(old)[:7]}."


def test_a_revision_is_offered_once_however_often_it_went_live(project, user, memory_runtime):
    deploy_many(project, user, 3)
    drive(deployment_rollback(project=project, number=1, actor=user))  # #4 runs revision 1
    drive(deployment_rollback(project=project, number=3, actor=user))  # #5 runs revision 3
    targets = rollback_targets_list(project=project)
    assert [(t.number, t.revision) for t in targets] == [(1, "1"), (2, "2")]


def test_rollback_beyond_the_kept_revisions_is_refused_with_its_code(project, user, memory_runtime):
    deploy_many(project, user, 6)
    with pytest.raises(Conflict) as refused:
        deployment_rollback(project=project, number=2, actor=user)
    assert refused.value.code == "target_not_kept" and "Redeploy #2" in refused.value.message
    with pytest.raises(Conflict) as live:
        deployment_rollback(project=project, number=6, actor=user)
    assert live.value.code == "already_live"
    assert Deployment.objects.count() == 6


def test_retired_kept_revisions_stay_cold_and_unkept_ones_are_removed(project, user, memory_runtime):
    deploy_many(project, user, 3)
    retire_after_warm_window(project=project, revision="1")
    assert ("hello", "1") in memory_runtime.cold  # stopped, kept: a rollback starts it
    type(project).objects.filter(pk=project.pk).update(keep_warm_seconds=0)  # the window is over
    deploy_many_more = [drive(deployment_request(project=project, sha=sha(i), actor=user)) for i in (4, 5)]
    assert deploy_many_more[-1].state == State.SUCCEEDED
    # #5 live keeps 5, 4, 3, 2: revision 1 fell out of the kept set and was evicted.
    assert ("evict", "hello", "1") in memory_runtime.calls
    assert ("hello", "1") not in memory_runtime.cold
    retire_after_warm_window(project=project, revision="2")
    assert ("hello", "2") in memory_runtime.cold


def test_every_kept_target_goes_live(project, user, memory_runtime):
    deploy_many(project, user, 6)
    for target in (5, 4, 3):
        for revision in ("3", "4", "5", "6"):
            retire_after_warm_window(project=project, revision=revision)
        rollback = drive(deployment_rollback(project=project, number=target, actor=user))
        assert rollback.state == State.SUCCEEDED and rollback.revision == str(target)
        assert states(project).get(target) is None  # live now: not offered


def test_keep_previous_warm_keeps_it_running_at_one_replica_past_the_window(project, user, memory_runtime):
    type(project).objects.filter(pk=project.pk).update(keep_previous_warm=True, replicas=3)
    project.refresh_from_db()
    deploy_many(project, user, 3)
    # Past the warm window: revision 2 (live before #3) shrinks to one replica, 1 retires.
    assert retire_after_warm_window(project=project, revision="2") is False
    assert memory_runtime.running[("hello", "2")].replicas == 1
    assert retire_after_warm_window(project=project, revision="1") is True
    assert ("hello", "1") in memory_runtime.cold
    assert {t.number: t.state for t in rollback_targets_list(project=project)}[2] == "warm"


def test_kept_revisions_count_each_revision_once_however_often_it_went_live(project, user):
    """Rollbacks add rows for revisions that exist: the kept set is by revision, newest
    last-went-live first (one grouped query, not the whole history)."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    deploy_many(project, user, 5)  # revisions 1..5, 5 live; keep_images=3
    for target in (2, 4, 2, 4, 2, 4):  # many rollbacks between two revisions
        drive(deployment_rollback(project=project, number=target, actor=user))
    project.refresh_from_db()
    assert lifecycle.revision_live(project=project) == "4"
    assert lifecycle.revisions_kept(project=project) == ["4", "2", "5", "3"]
    # Order is by when each revision last went live.
    Deployment.objects.filter(project=project, number=3).update(live_at=timezone.now() + timedelta(hours=1))
    Deployment.objects.filter(project=project, number=1).update(live_at=timezone.now() + timedelta(hours=2))
    assert lifecycle.revisions_kept(project=project) == ["4", "1", "3", "2"]
    with CaptureQueriesContext(connection) as queries:
        assert lifecycle.revisions_kept(project=project, live="4") == ["4", "1", "3", "2"]
    assert len(queries.captured_queries) == 1
