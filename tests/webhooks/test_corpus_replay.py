"""Acceptance: GitHub's real deliveries (../shared/corpora) through a project's own webhook URL
(POST /webhooks/github/<webhook_id>/), and the shared /webhooks/github/ kept for older hooks."""

import json

import pytest

from deployments.models import Deployment
from tests.conftest import corpus_path
from webhooks.github import sign
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db
GH = ("github_payloads",)


def load(*parts):
    return corpus_path(*GH, *parts).read_bytes()


@pytest.mark.parametrize("url", ["own", "shared"])
def test_real_merge_pair_makes_exactly_one_deployment_in_either_order(make_project, deliver, redis_client, url):
    pr_close = load("reallyfastci", "webhook-pr-close.json")
    push = load("reallyfastci", "webhook-push-to-master.json")
    sha = "a21683865c088b5fe1906cf6552d15a285a4986d"
    orders = {
        "pr-first": [("pull_request", pr_close), ("push", push)],
        "push-first": [("push", push), ("pull_request", pr_close)],
    }
    for i, (name, deliveries) in enumerate(orders.items()):
        project = make_project(slug=f"gcb-{name}", repository="ailisp/gcbapp-buildconfig-example",
                               production_branch="master", webhook_secret=f"secret-{i}")
        to = project if url == "own" else "/webhooks/github/"
        first = deliver(deliveries[0][0], deliveries[0][1], secret=f"secret-{i}", to=to)
        second = deliver(deliveries[1][0], deliveries[1][1], secret=f"secret-{i}", to=to)
        # Two projects share the repository: each delivery concerns the one whose secret signs it.
        assert first.status_code == 202, first.json()
        assert first.json()["status"] == "accepted"
        assert first.json()["deployment"] == 1
        assert first.json()["url"] == f"/api/projects/{project.slug}/deployments/1/"
        assert second.status_code == 200, second.json()
        assert second.json()["status"] == "already_queued"
        deployments = list(Deployment.objects.filter(project=project))
        assert [(d.number, d.commit_sha, d.trigger) for d in deployments] == [(1, sha, "merge")]
        assert "Update" in deployments[0].message or deployments[0].message
    # Two deployments were queued on the real broker, one per project.
    assert redis_client.llen("celery") == 2


@pytest.mark.parametrize("url", ["own", "shared"])
def test_real_signed_merge_to_main_with_its_real_secret(make_project, client, url):
    headers = json.loads(load("cogni-git-review", "pull_request.closed.github-headers.json"))
    body = load("cogni-git-review", "pull_request.closed.body.raw.json")
    project = make_project(slug="test-repo", repository="derekg1729/test-repo", production_branch="main",
                           webhook_secret="402786017574bd28f9d8f7a18648939751c47fe09077d56e10f0444f14fbb73b")
    meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()
            if k not in ("content-type", "content-length")}
    url = f"/webhooks/github/{project.webhook_id}/" if url == "own" else "/webhooks/github/"
    response = client.generic("POST", url, body, content_type=headers["content-type"], **meta)
    assert response.status_code == 202, response.json()
    deployment = Deployment.objects.get(project=project)
    assert deployment.commit_sha == "18cc785ed89e9653ea48823eb5320ab0b691d7da"
    assert deployment.trigger == "merge"
    delivery = WebhookDelivery.objects.get(delivery_id=headers["x-github-delivery"])
    assert delivery.outcome == "deployed" and delivery.deployment == deployment
    # The same delivery again (a redelivery keeps its X-GitHub-Delivery): nothing new.
    again = client.generic("POST", url, body, content_type=headers["content-type"], **meta)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert Deployment.objects.filter(project=project).count() == 1


@pytest.mark.parametrize("event,path,why", [
    ("push", ("drone-go-scm", "push_tag.json"), "Tag push"),
    ("push", ("drone-go-scm", "push_tag_delete.json"), "Tag push"),
    ("push", ("drone-go-scm", "push_branch_delete.json"), "not to the production branch"),
    ("push", ("drone-go-scm", "push_branch_create.json"), "not to the production branch"),
    ("push", ("octokit-webhooks", "api.github.com", "push", "payload.json"), "Tag push"),
    ("pull_request", ("drone-go-scm", "pr_closed.json"), "closed without merging"),
    ("pull_request", ("drone-go-scm", "pr_opened.json"), "action 'opened'"),
    ("pull_request", ("drone-go-scm", "pr_sync.json"), "action 'synchronize'"),
    ("pull_request", ("octokit-webhooks", "api.github.com", "pull_request", "closed.payload.json"),
     "closed without merging"),
    ("pull_request", ("reallyfastci", "webhook-pr.json"), "action 'synchronize'"),
    ("push", ("reallyfastci", "webhook-push.json"), "not to the production branch"),
    ("create", ("drone-go-scm", "branch_create.json"), "'create' events never deploy"),
    ("delete", ("drone-go-scm", "tag_delete.json"), "'delete' events never deploy"),
])
def test_deliveries_that_must_not_deploy(make_project, deliver, event, path, why):
    body = load(*path)
    payload = json.loads(body)
    branch = "master"
    make_project(slug="p", repository=payload["repository"]["full_name"], production_branch=branch)
    response = deliver(event, body)
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ignored"
    assert why in response.json()["reason"]
    assert Deployment.objects.count() == 0


def test_deletion_of_the_production_branch_itself_does_not_deploy(make_project, deliver):
    body = load("drone-go-scm", "push_branch_delete.json")
    make_project(slug="p", repository="bradrydzewski/drone-test-go", production_branch="feature-branch")
    response = deliver("push", body)
    assert response.json()["status"] == "ignored"
    assert "Deletion" in response.json()["reason"]


def test_pull_request_merged_into_another_branch_does_not_deploy(make_project, deliver):
    payload = json.loads(load("reallyfastci", "webhook-pr-close.json"))
    payload["pull_request"]["base"]["ref"] = "develop"
    make_project(slug="p", repository="ailisp/gcbapp-buildconfig-example", production_branch="master")
    response = deliver("pull_request", payload)
    assert response.json()["status"] == "ignored"
    assert "not the production branch" in response.json()["reason"]
    assert Deployment.objects.count() == 0


def test_plain_push_to_production_branch_deploys_its_after_sha(make_project, deliver):
    body = load("drone-go-scm", "push.json")
    project = make_project(slug="hello-world", repository="Codertocat/Hello-World", production_branch="master")
    response = deliver("push", body)
    assert response.status_code == 202
    deployment = Deployment.objects.get(project=project)
    assert deployment.commit_sha == json.loads(body)["after"]
    assert deployment.trigger == "push"


def test_ping_gets_a_short_answer(make_project, deliver):
    make_project(slug="hello-world", repository="Octocoders/Hello-World")
    response = deliver("ping", load("octokit-webhooks", "api.github.com", "ping", "payload.json"))
    assert response.status_code == 200
    assert response.json()["status"] == "pong"


def test_legacy_form_encoded_delivery_signed_over_the_raw_form_body(make_project, deliver):
    body = load("legacy-form-urlencoded-2013", "push.form-urlencoded.body.txt")
    project = make_project(slug="rebol", repository="onetom/rebol", production_branch="master")
    response = deliver("push", None, body=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202, response.json()
    assert Deployment.objects.get(project=project).commit_sha == "4d9840f8e661e7067472e828ee6ad8dd3008b247"
    # The signature covers the form body as sent, not the JSON inside it.
    payload_json = b"payload-json"
    bad = deliver("push", None, body=body, content_type="application/x-www-form-urlencoded",
                  extra={"HTTP_X_HUB_SIGNATURE_256": sign(secret="s3cret", body=payload_json)})
    assert bad.status_code == 401
