"""A failed webhook deployment does not block its commit: a new delivery deploys it again,
while a redelivery (the same X-GitHub-Delivery) stays a duplicate."""

import json

import pytest

from deployments.models import Deployment, State
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db

SHA = "3" * 40
PUSH = {"ref": "refs/heads/main", "after": SHA, "repository": {"full_name": "octo/hello"},
        "head_commit": {"message": "fix it", "author": {"username": "mona"}}}


def test_a_new_delivery_of_a_failed_commit_deploys_it_again(make_project, deliver, memory_runtime, redis_client):
    project = make_project(watch_seconds=0)
    memory_runtime.fail_build[SHA] = "flaky network in RUN pip install"
    first = deliver("push", json.dumps(PUSH).encode(), delivery="d-1")
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    failed = rollout_drive_until_wait(Deployment.objects.get(number=1))
    assert failed.state == State.FAILED

    # The same delivery again (GitHub's "Redeliver"): still a duplicate, nothing new.
    again = deliver("push", json.dumps(PUSH).encode(), delivery="d-1")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert Deployment.objects.count() == 1

    # A new delivery of the same commit (a re-run): a second deployment, which goes live.
    del memory_runtime.fail_build[SHA]
    rerun = deliver("push", json.dumps(PUSH).encode(), delivery="d-2")
    assert rerun.status_code == 202 and rerun.json()["deployment"] == 2
    second = rollout_drive_until_wait(Deployment.objects.get(number=2))
    assert second.state == State.SUCCEEDED and second.commit_sha == SHA
    project.refresh_from_db()
    assert project.live_deployment == second

    # Now it is live: one more delivery of that commit adds nothing.
    late = deliver("push", json.dumps(PUSH).encode(), delivery="d-3")
    assert late.status_code == 200 and late.json()["status"] == "already_queued"
    assert late.json()["deployment"] == 2 and Deployment.objects.count() == 2
