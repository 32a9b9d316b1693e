"""A merge's two deliveries arriving at the same moment still make one deployment."""

import json
import threading
import uuid

import pytest
from django.db import connection
from django.test import Client

from deployments.models import Deployment
from webhooks.github import sign
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db(transaction=True)


def test_pull_request_and_push_racing_make_exactly_one_deployment(make_project):
    project = make_project()
    for round_ in range(5):
        sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        pr = {"action": "closed", "number": round_, "repository": {"full_name": "octo/hello"},
              "pull_request": {"merged": True, "merge_commit_sha": sha, "base": {"ref": "main"}, "title": "t"}}
        push = {"ref": "refs/heads/main", "after": sha, "repository": {"full_name": "octo/hello"}}
        barrier = threading.Barrier(2)
        answers = []

        def send(event, payload, barrier=barrier, answers=answers):
            body = json.dumps(payload).encode()
            barrier.wait()
            try:
                answers.append(Client().generic(
                    "POST", f"/webhooks/github/{project.webhook_id}/", body, content_type="application/json",
                    headers={"x-github-event": event, "x-github-delivery": str(uuid.uuid4()),
                             "x-hub-signature-256": sign(secret="s3cret", body=body)}).status_code)
            finally:
                connection.close()

        threads = [threading.Thread(target=send, args=a) for a in (("pull_request", pr), ("push", push))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(answers) == [200, 202]
        assert Deployment.objects.filter(project=project, commit_sha=sha).count() == 1
        assert WebhookDelivery.objects.filter(commit_sha=sha).count() == 2
