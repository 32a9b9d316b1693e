"""Two rollbacks at once, to different revisions, on the real single host under load:
no request fails and the project ends on the later request (real Podman and HAProxy).
The interleavings themselves are pinned down in tests/deployments/races/; this checks
what a user of the app sees."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from deployments.models import Project, State
from deployments.services import deployment_request, deployment_rollback
from tests.deployments.runtimes.single_host.helpers import Load
from tests.e2e.test_single_host_platform import app, drive, platform, version  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.containers, pytest.mark.haproxy, pytest.mark.django_db(transaction=True)]


def test_two_rollbacks_at_once_under_load(app, platform, user):  # noqa: F811
    project, repo = app
    shas = {}
    for name in ("one", "two", "three"):
        sha = repo.commit_example("hello", name)
        d = drive(deployment_request(project=Project.objects.get(pk=project.pk), sha=sha, actor=user))
        assert d.state == State.SUCCEEDED, d.failure_reason
        shas[d.number] = sha
    live = 3
    with Load(platform, project.slug, threads=4) as load:
        load.wait_for(20)
        for round_ in range(4):
            targets = [n for n in shas if n != live]
            if round_ % 2:
                targets.reverse()
            rollbacks = [deployment_rollback(project=Project.objects.get(pk=project.pk), number=t, actor=user)
                         for t in targets]
            barrier = threading.Barrier(2)
            done = {}

            def run(d, barrier=barrier, done=done):
                try:
                    barrier.wait()
                    done[d.number] = drive(d)
                finally:
                    connections.close_all()  # this thread's database connection

            threads = [threading.Thread(target=run, args=(d,)) for d in rollbacks]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            later = max(rollbacks, key=lambda d: d.number)
            assert done[later.number].state == State.SUCCEEDED, done[later.number].failure_reason
            assert Project.objects.get(pk=project.pk).live_deployment_id == later.pk
            live = later.rollback_of_id and later.rollback_of.number
            assert version(platform, project) == shas[live]
            load.wait_for(20)
    assert load.errors == [] and set(load.statuses) == {200}, (load.statuses, load.errors[:3])
    assert sum(load.statuses.values()) > 100
