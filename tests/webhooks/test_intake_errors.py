"""Bad input gets a clear 4xx JSON error, never a 500, and queues nothing."""

import json

import pytest

from deployments.models import Deployment
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db

PUSH = {
    "ref": "refs/heads/main",
    "after": "1" * 40,
    "deleted": False,
    "repository": {"full_name": "octo/hello"},
    "head_commit": {"message": "Fix the thing", "author": {"name": "Mona", "username": "mona"}},
    "sender": {"login": "mona"},
}


def assert_error(response, status, words):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] and words in body["message"], body
    assert Deployment.objects.count() == 0


def test_missing_signature(make_project, deliver):
    make_project()
    assert_error(deliver("push", PUSH, secret=None), 401, "Missing X-Hub-Signature-256")


def test_wrong_signature(make_project, deliver):
    make_project()
    assert_error(deliver("push", PUSH, secret="not-the-secret"), 401, "does not match")
    # A rejected delivery does not burn its id: the genuine one still gets through.
    assert WebhookDelivery.objects.count() == 0


def test_forged_delivery_id_does_not_block_the_real_one(make_project, deliver):
    make_project()
    deliver("push", PUSH, secret="forged", delivery="abc-123")
    assert deliver("push", PUSH, delivery="abc-123").status_code == 202


def test_malformed_json(make_project, deliver):
    make_project()
    assert_error(deliver("push", None, body=b'{"ref": '), 400, "not valid JSON")


def test_json_that_is_not_an_object(make_project, deliver):
    assert_error(deliver("push", None, body=b"[1, 2]"), 400, "JSON object")


def test_form_without_payload_field(make_project, deliver):
    assert_error(deliver("push", None, body=b"foo=bar", content_type="application/x-www-form-urlencoded"),
                 400, "no `payload` field")


def test_unsupported_content_type(deliver):
    assert_error(deliver("push", None, body=b"<xml/>", content_type="text/xml"), 415, "Unsupported content type")


def test_missing_event_header(client):
    response = client.post("/webhooks/github/", json.dumps(PUSH), content_type="application/json",
                           HTTP_X_GITHUB_DELIVERY="d-1")
    assert_error(response, 400, "X-GitHub-Event")


def test_missing_delivery_header(client):
    response = client.post("/webhooks/github/", json.dumps(PUSH), content_type="application/json",
                           HTTP_X_GITHUB_EVENT="push")
    assert_error(response, 400, "X-GitHub-Delivery")


def test_unknown_repository_on_the_shared_url_is_refused_like_a_bad_signature(make_project, deliver):
    # Not a 404: that would tell anyone which repositories are connected (tests/security).
    make_project()
    payload = {**PUSH, "repository": {"full_name": "someone/else"}}
    assert_error(deliver("push", payload, to="/webhooks/github/"), 401, "does not match")


def test_another_repositorys_delivery_on_a_projects_own_url_is_ignored(make_project, deliver):
    project = make_project()
    response = deliver("push", {**PUSH, "repository": {"full_name": "someone/else"}}, to=project)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored" and "someone/else" in response.json()["reason"]
    assert Deployment.objects.count() == 0
    assert WebhookDelivery.objects.get().outcome == WebhookDelivery.Outcome.IGNORED


def test_body_over_the_limit(make_project, deliver, settings):
    make_project()
    settings.SWITCHBACK = {**settings.SWITCHBACK, "WEBHOOK_MAX_BODY_BYTES": 1000}
    big = {**PUSH, "padding": "x" * 2000}
    assert_error(deliver("push", big), 413, "limit")


def test_wrong_method(client):
    response = client.get("/webhooks/github/")
    assert response.status_code == 405
    assert "POST" in response.json()["message"]


def test_unknown_event_is_ignored_with_a_reason(make_project, deliver):
    make_project()
    response = deliver("issues", {**PUSH, "action": "opened"})
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "reason": "Event 'issues' does not deploy.",
                               "delivery": response.json()["delivery"]}


def test_headers_are_matched_case_insensitively(make_project, client):
    """Real deliveries arrive with lower-case header names (HTTP/2, proxies)."""
    from django.test import Client

    from webhooks.github import sign

    make_project()
    body = json.dumps(PUSH).encode()
    response = Client().generic("POST", "/webhooks/github/", body, content_type="application/json",
                                headers={"x-github-event": "push", "x-github-delivery": "lower-1",
                                         "x-hub-signature-256": sign(secret="s3cret", body=body)})
    assert response.status_code == 202


def test_push_with_garbage_fields_is_read_leniently(make_project, deliver):
    make_project()
    payload = {**PUSH, "head_commit": "not an object", "pusher": 7, "commits": None, "unknown": {"x": 1}}
    response = deliver("push", payload)
    assert response.status_code == 202
    assert Deployment.objects.get().commit_sha == "1" * 40


def test_invalid_after_sha_is_ignored_not_crashed(make_project, deliver):
    make_project()
    response = deliver("push", {**PUSH, "after": "not-a-sha"})
    assert response.status_code == 200 and response.json()["status"] == "ignored"
