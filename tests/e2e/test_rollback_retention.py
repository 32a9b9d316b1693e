"""Retention on the real single host (Podman, HAProxy, no registry): with 25 successful
deployments and #25 live, #15 to #24 are rollback targets, each rolled back to under load
with no failed request, by starting its kept (stopped) containers; #14 and older are
unavailable with the reason, their rollback refused, and their images pruned."""

from __future__ import annotations

import pytest

from deployments.errors import Conflict
from deployments.models import Deployment, Project, State
from deployments.rollback_targets import rollback_targets_list
from deployments.runtimes.single_host import containers as c
from deployments.runtimes.single_host.images import find_image
from deployments.services import deployment_request, deployment_rollback
from tests.deployments.runtimes.single_host.helpers import Load
from tests.e2e.test_single_host_platform import app, drive, platform, version  # noqa: F401 (fixtures)
from tests.rollout import retire_after_warm_window

pytestmark = [pytest.mark.containers, pytest.mark.haproxy, pytest.mark.django_db(transaction=True)]

COUNT, KEEP = 25, 10


def live_revision(project) -> str:
    return Project.objects.select_related("live_deployment__source").get(pk=project.pk).live_deployment.revision


def test_25_deployments_roll_back_to_each_of_the_last_10(app, platform, user):  # noqa: F811
    project, repo = app
    # No warm window: the retirements below are not in the future of the images' pruning.
    # 25 builds and starts on a busy engine: a start gets more time than the default 30 s
    # (how fast a start is, is not what this test is about; a start that never answers
    # still fails it).
    Project.objects.filter(pk=project.pk).update(keep_images=KEEP, keep_warm_seconds=0, ready_timeout_seconds=120)
    shas = {}
    for n in range(1, COUNT + 1):
        sha = repo.commit_example("hello", f"change {n}")
        d = drive(deployment_request(project=Project.objects.get(pk=project.pk), sha=sha, actor=user), deadline=240)
        assert d.state == State.SUCCEEDED and d.number == n, d.failure_reason
        shas[n] = sha
        if n > 1:  # the keep-warm window passes: the previous revision is retired
            assert retire_after_warm_window(project=project, revision=str(n - 1))
    client = platform.client
    slug = Project.objects.get(pk=project.pk).slug

    targets = {t.number: t for t in rollback_targets_list(project=Project.objects.get(pk=project.pk))}
    assert sorted(targets) == list(range(1, COUNT))
    for n in range(COUNT - KEEP, COUNT):  # 15..24: warm or cold, never unavailable
        assert targets[n].state in ("warm", "cold"), (n, targets[n])
    for n in range(1, COUNT - KEEP):  # 1..14: unavailable, with the reason and what to do
        assert targets[n].state == "unavailable" and "keep_images" in targets[n].reason
        assert targets[n].remedy == f"Redeploy #{n} rebuilds commit {shas[n][:7]}."
    with pytest.raises(Conflict) as refused:
        deployment_rollback(project=Project.objects.get(pk=project.pk), number=COUNT - KEEP - 1, actor=user)
    assert refused.value.code == "target_not_kept"

    # Pruned: no image older than the kept ones is left (#14's goes at the next build);
    # the kept revisions' containers are stopped, not removed; older ones are removed.
    for n in range(1, COUNT - KEEP - 1):
        assert find_image(client, Deployment.objects.get(project=project, number=n).image) is None, n
    by_revision: dict[str, list] = {}
    for k in c.list_replicas(client, slug):
        by_revision.setdefault(k.labels[c.LABEL_REVISION], []).append(k)
    assert set(by_revision) == {str(n) for n in range(COUNT - KEEP, COUNT + 1)}
    assert all(k.status != "running" for n in range(COUNT - KEEP, COUNT) for k in by_revision[str(n)])
    stopped_ids = {r: {k.id for k in ks} for r, ks in by_revision.items()}

    with Load(platform, slug, threads=4) as load:
        load.wait_for(20)
        for target in range(COUNT - 1, COUNT - KEEP - 1, -1):  # 24 down to 15
            previous = live_revision(project)
            rollback = drive(deployment_rollback(project=Project.objects.get(pk=project.pk), number=target,
                                                 actor=user))
            assert rollback.state == State.SUCCEEDED, (target, rollback.failure_reason)
            assert version(platform, project) == shas[target]
            # A cold rollback starts the kept containers: same ids, nothing created.
            running = {k.id for k in c.list_replicas(client, slug, str(target)) if k.status == "running"}
            assert running == stopped_ids[str(target)], target
            load.wait_for(10)
            assert retire_after_warm_window(project=project, revision=previous)
    assert load.errors == [] and set(load.statuses) == {200}, (load.statuses, load.errors[:3])
    assert sum(load.statuses.values()) > 100
    # Still the same kept set: every one of them stays a rollback target.
    final = {t.number: t.state for t in rollback_targets_list(project=Project.objects.get(pk=project.pk))}
    assert all(final[n] in ("warm", "cold") for n in range(COUNT - KEEP + 1, COUNT + 1)), final
