"""The REST API as a caller sees it: token auth, JSON errors with a message, history."""

import pytest

from deployments.models import Deployment, State
from deployments.services import deployment_request

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _staff(user):
    # Only staff create projects (the permission matrix is in test_api_permissions.py).
    user.is_staff = True
    user.save(update_fields=["is_staff"])

NEW_PROJECT = {"name": "Shop", "slug": "shop", "repository": "acme/shop", "production_branch": "master",
               "webhook_secret": "topsecret"}


def test_requires_a_token(client):
    response = client.get("/api/projects/")
    assert response.status_code in (401, 403)
    assert response.json()["message"]


def test_bad_token_is_rejected_with_a_message(client):
    response = client.get("/api/projects/", HTTP_AUTHORIZATION="Token nope")
    assert response.status_code == 401
    assert "token" in response.json()["message"].lower()


def test_create_list_and_read_project_never_returns_the_secret(api):
    created = api.post("/api/projects/", NEW_PROJECT, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert "webhook_secret" not in body and body["has_webhook_secret"] is True
    assert body["clone_url"] == "" and body["replicas"] == 1 and body["runtime"] == "single-host"
    # The previous revision stays up 30 s after a switch unless the project says otherwise.
    assert body["keep_warm_seconds"] == 30
    # The project's own hook URL, with its unguessable id (admins and staff only).
    from deployments.models import Project

    hook_id = Project.objects.get(slug="shop").webhook_id
    assert len(hook_id) >= 32 and body["webhook_url"].endswith(f"/webhooks/github/{hook_id}/")
    listed = api.get("/api/projects/").json()
    assert [p["slug"] for p in listed["results"]] == ["shop"]
    assert "topsecret" not in str(listed) and "topsecret" not in str(api.get("/api/projects/shop/").json())


def test_patch_project_settings_and_audit(api, user):
    api.post("/api/projects/", NEW_PROJECT, format="json")
    response = api.patch("/api/projects/shop/", {"replicas": 3, "readiness_probe_path": "/ready",
                                                "webhook_secret": "rotated"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["replicas"] == 3
    from deployments.models import AuditEntry

    entry = AuditEntry.objects.filter(action="project.update").get()
    assert entry.actor == user
    assert entry.data["replicas"] == {"from": 1, "to": 3}
    assert entry.data["webhook_secret"] == {"changed": True}
    assert "rotated" not in str(entry.data)


@pytest.mark.parametrize("payload,words", [
    ({**NEW_PROJECT, "slug": "Not A Slug"}, "slug"),
    ({**NEW_PROJECT, "repository": "no-slash"}, "owner/name"),
    ({**NEW_PROJECT, "port": 70000}, "port"),
    ({**NEW_PROJECT, "replicas": "many"}, "replicas"),
    ({**NEW_PROJECT, "strategy": {"steps": [{"weight": 50}, {"weight": 10}]}}, "weights must increase"),
    ({**NEW_PROJECT, "env": ["A=1"]}, "env"),
])
def test_invalid_project_gets_a_400_with_a_message(api, payload, words):
    response = api.post("/api/projects/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert words in response.json()["message"]


def test_duplicate_slug_is_a_clear_error(api):
    api.post("/api/projects/", NEW_PROJECT, format="json")
    response = api.post("/api/projects/", NEW_PROJECT, format="json")
    assert response.status_code in (400, 409)
    assert "shop" in response.json()["message"] or "slug" in response.json()["message"]


def test_malformed_json_body_is_a_400(api):
    response = api.generic("POST", "/api/projects/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


def test_unknown_project_is_a_404_json(api):
    response = api.get("/api/projects/ghost/deployments/")
    assert response.status_code == 404
    assert "ghost" in response.json()["message"]


def test_manual_deploy_and_history_newest_first_paginated(api, django_capture_on_commit_callbacks):
    api.post("/api/projects/", NEW_PROJECT, format="json")
    for i in range(30):
        with django_capture_on_commit_callbacks(execute=False):
            response = api.post("/api/projects/shop/deployments/", {"sha": f"{i:040x}"}, format="json")
        assert response.status_code == 202, response.json()
    assert response.json()["number"] == 30 and response.json()["trigger"] == "api"
    page = api.get("/api/projects/shop/deployments/").json()
    assert page["count"] == 30
    assert [d["number"] for d in page["results"]][:3] == [30, 29, 28]
    assert len(page["results"]) == 25
    assert [d["number"] for d in api.get(page["next"]).json()["results"]] == [5, 4, 3, 2, 1]
    # A newer deployment supersedes older ones that never started.
    states = dict(Deployment.objects.values_list("number", "state"))
    assert states[30] == "queued" and all(states[n] == "superseded" for n in range(1, 30))
    detail = api.get("/api/projects/shop/deployments/30/").json()
    assert detail["events"][0]["message"].startswith("Queued")
    assert detail["requested_by"] == "alice"


def test_manual_deploy_rejects_a_bad_sha(api):
    api.post("/api/projects/", NEW_PROJECT, format="json")
    response = api.post("/api/projects/shop/deployments/", {"sha": "main"}, format="json")
    assert response.status_code == 400
    assert "40-character" in response.json()["message"]
    assert Deployment.objects.count() == 0


def test_rollback_refuses_what_never_went_live(api, user):
    api.post("/api/projects/", NEW_PROJECT, format="json")
    from deployments.models import Project

    deployment_request(project=Project.objects.get(slug="shop"), sha="a" * 40, actor=user)
    response = api.post("/api/projects/shop/deployments/1/rollback/")
    assert response.status_code == 409
    assert "never went live" in response.json()["message"]
    assert api.post("/api/projects/shop/deployments/9/rollback/").status_code == 404
    assert Deployment.objects.count() == 1


def test_rollback_creates_a_new_deployment_reusing_the_image(api, user):
    from deployments.models import Project

    api.post("/api/projects/", NEW_PROJECT, format="json")
    project = Project.objects.get(slug="shop")
    first = deployment_request(project=project, sha="a" * 40, actor=user)
    Deployment.objects.filter(pk=first.pk).update(state=State.SUCCEEDED, image="shop:aaa", live_at="2026-01-01T00:00Z")
    second = deployment_request(project=project, sha="b" * 40, actor=user)
    Deployment.objects.filter(pk=second.pk).update(state=State.SUCCEEDED, image="shop:bbb", live_at="2026-01-02T00:00Z")
    Project.objects.filter(pk=project.pk).update(live_deployment=second)
    response = api.post("/api/projects/shop/deployments/1/rollback/")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["number"] == 3 and body["trigger"] == "rollback" and body["rollback_of"] == 1
    assert body["image"] == "shop:aaa" and body["commit_sha"] == "a" * 40 and body["revision"] == "1"
    # History is never rewritten: #1 and #2 are untouched.
    assert Deployment.objects.get(number=1).state == "succeeded"
    assert Deployment.objects.get(number=2).state == "succeeded"
    again = api.post("/api/projects/shop/deployments/2/rollback/")
    assert again.status_code == 409 and "already live" in again.json()["message"]


def test_openapi_schema_and_docs(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/projects/{slug}/deployments/{number}/rollback/" in text
    assert api.get("/api/docs/").status_code == 200


def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_token_auth_asks_for_the_token_only(api, user, client):
    """knox swept the user's other tokens on every call; tokens here never expire, so the
    only query authentication makes is the token's own (an expired token still fails)."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from knox.models import AuthToken

    with CaptureQueriesContext(connection) as ctx:
        assert api.get("/api/projects/").status_code == 200
    token_queries = [q["sql"] for q in ctx.captured_queries if "knox_authtoken" in q["sql"]]
    assert len(token_queries) == 1 and "token_key" in token_queries[0], token_queries
    _, expired = AuthToken.objects.create(user=user, expiry=timedelta(seconds=-1))
    assert client.get("/api/projects/", HTTP_AUTHORIZATION=f"Token {expired}").status_code == 401
