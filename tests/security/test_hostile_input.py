# ruff: noqa: F811 - pytest fixtures imported from tests.dashboard.people are parameters here
"""Hostile inputs (issue 9, item 7): each is the attack, and each gets a 4xx JSON answer with
a message and writes nothing.  Before the fix every one of them was a 500 or an HTML page."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from deployments.models import AuditEntry, Deployment, Membership, Project
from tests.dashboard.people import people, project  # noqa: F401 - fixtures
from webhooks.github import sign
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db

DEEP = b"[" * 200_000
PUSH = {
    "ref": "refs/heads/main", "after": "1" * 40, "repository": {"full_name": "octo/hello"},
    "head_commit": {"message": "Fix the thing", "author": {"username": "mona"}}, "sender": {"login": "mona"},
}


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_json_error(response, statuses):
    statuses = (statuses,) if isinstance(statuses, int) else statuses
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["error"] and body["message"], body
    return body


def assert_nothing_written(before_audit: int | None = None):
    assert Deployment.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0
    if before_audit is not None:
        assert AuditEntry.objects.count() == before_audit


def hook_post(client, url, body: bytes, *, event="push", secret="s3cret", content_type="application/json",
              **extra):
    headers = {"HTTP_X_GITHUB_EVENT": event, "HTTP_X_GITHUB_DELIVERY": str(uuid.uuid4()), **extra}
    if secret is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = sign(secret=secret, body=body)
    return client.generic("POST", url, body, content_type=content_type, **headers)


def hook_urls(project: Project) -> list[str]:
    return [reverse("webhooks:github-project", kwargs={"hook_id": project.webhook_id}), reverse("webhooks:github")]


# --- deeply nested JSON (RecursionError) --------------------------------------------------


@pytest.mark.parametrize("which", ["per-project", "legacy"])
def test_deeply_nested_json_on_the_unauthenticated_webhook(client, make_project, which):
    project = make_project()
    url = hook_urls(project)[which == "legacy"]
    body = assert_json_error(hook_post(client, url, DEEP, secret=None), 400)
    assert "nested" in body["message"]
    # Signed, too: the signature does not make the body parseable.
    assert_json_error(hook_post(client, url, DEEP), 400)
    assert_nothing_written()


def test_deeply_nested_json_on_the_api(project, people):
    before = AuditEntry.objects.count()
    response = api_as(people["admin"]).generic("PATCH", "/api/projects/hello/", DEEP,
                                               content_type="application/json")
    body = assert_json_error(response, 400)
    assert "nested" in body["message"]
    assert AuditEntry.objects.count() == before


def test_deeply_nested_strategy_in_the_dashboard_form(project, people, client):
    client.force_login(people["admin"])
    response = client.post("/projects/hello/settings/", {"strategy_json": "[" * 200_000})
    assert response.status_code == 400  # the form again, with its error
    assert b"nested" in response.content


# --- NUL bytes (PostgreSQL refuses them in text) -------------------------------------------


@pytest.mark.parametrize("env", [{"TOKEN": "a\x00b"}, {"A\x00B": "x"}])
def test_nul_in_env_values_and_names(project, people, env):
    before = AuditEntry.objects.count()
    response = api_as(people["admin"]).patch("/api/projects/hello/", {"env": env}, format="json")
    body = assert_json_error(response, 400)
    assert "NUL" in body["message"]
    project.refresh_from_db()
    assert project.env == {} and AuditEntry.objects.count() == before


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_nul_in_a_username_path(project, people, method):
    before = Membership.objects.count(), AuditEntry.objects.count()
    client = api_as(people["admin"])
    response = getattr(client, method)("/api/projects/hello/members/vie%00wer/", {"role": "admin"}, format="json")
    assert_json_error(response, (400, 404))
    assert (Membership.objects.count(), AuditEntry.objects.count()) == before


def test_nul_in_a_member_username_body(project, people):
    response = api_as(people["admin"]).post("/api/projects/hello/members/",
                                            {"username": "a\x00b", "role": "viewer"}, format="json")
    assert_json_error(response, 400)


def test_nul_in_a_signed_deliverys_commit_message(client, make_project):
    project = make_project()
    before = AuditEntry.objects.count()
    payload = {**PUSH, "head_commit": {"message": "innocent\x00; drop", "author": {"username": "mona"}}}
    for url in hook_urls(project):
        body = assert_json_error(hook_post(client, url, json.dumps(payload).encode()), 400)
        assert "NUL" in body["message"]
    assert_nothing_written(before_audit=before)


def test_nul_in_the_repository_name_of_an_unsigned_delivery(client, make_project):
    make_project()
    before = AuditEntry.objects.count()
    payload = {**PUSH, "repository": {"full_name": "octo/hel\x00lo"}}
    assert_json_error(hook_post(client, reverse("webhooks:github"), json.dumps(payload).encode(), secret=None),
                      400)
    assert_nothing_written(before_audit=before)


# --- headers ------------------------------------------------------------------------------


def test_github_event_header_over_50_characters(client, make_project):
    project = make_project()
    before = AuditEntry.objects.count()
    for url in hook_urls(project):
        body = assert_json_error(hook_post(client, url, json.dumps(PUSH).encode(), event="p" * 51), 400)
        assert "X-GitHub-Event" in body["message"]
    assert_nothing_written(before_audit=before)


def test_hook_id_header_with_a_nul(client, make_project):
    project = make_project()
    response = hook_post(client, hook_urls(project)[0], json.dumps(PUSH).encode(), HTTP_X_GITHUB_HOOK_ID="1\x002")
    assert_json_error(response, 400)
    assert_nothing_written()


# --- oversize bodies ------------------------------------------------------------------------

BIG = b'{"a": "' + b"x" * (30 * 1024 * 1024) + b'"}'


def test_30_mb_body_on_the_api(project, people):
    before = AuditEntry.objects.count()
    response = api_as(people["admin"]).generic("PATCH", "/api/projects/hello/", BIG,
                                               content_type="application/json")
    assert_json_error(response, 413)
    assert AuditEntry.objects.count() == before


def test_30_mb_form_body_on_the_api(project, people):
    response = api_as(people["admin"]).generic("PATCH", "/api/projects/hello/", b"name=" + BIG,
                                               content_type="application/x-www-form-urlencoded")
    assert_json_error(response, 413)


def test_30_mb_body_on_the_webhook(client, make_project):
    project = make_project()
    for url in hook_urls(project):
        assert_json_error(hook_post(client, url, BIG), 413)
    assert_nothing_written()


def test_nul_in_the_action_of_a_signed_delivery_about_another_repository(client, make_project):
    # Found by tests/security/test_fuzz.py: the "wrong repository" answer read `action` unguarded.
    project = make_project()
    payload = {"action": "a\x00b", "repository": {"full_name": "someone/else"}}
    body = assert_json_error(hook_post(client, hook_urls(project)[0], json.dumps(payload).encode(),
                                       event="pull_request"), 400)
    assert "NUL" in body["message"]
    assert_nothing_written()
