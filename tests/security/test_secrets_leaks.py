"""Issue 9, "Credentials in the clear": plant unique secrets, use them, then grep for them everywhere.

A webhook secret, an env value and an API token, each unique to the run, go through the
whole life of a project (created and changed through the API, a signed delivery, deploys
through the memory runtime, a rollback) and must then appear in no API response, no
dashboard page, no event, no audit row, no log record, and in no column of any table of
the database (where only their ciphertext, or a token's digest, may be).
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from deployments.models import AuditEntry, Deployment, DeploymentEvent, State
from deployments.services_members import token_regenerate
from tests.rollout import rollout_drive_until_wait
from webhooks.github import sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def plants():
    run = uuid.uuid4().hex
    return {"webhook secret": f"whsec-plant-{run}", "env value": f"envval-plant-{run}",
            "changed env value": f"envval2-plant-{run}", "git token": f"gittok-plant-{run}",
            "GitHub token": f"ghtok-plant-{run}"}


def _leaks(text: str, plants: dict[str, str]) -> list[str]:
    return [name for name, value in plants.items() if value in text]


def _every_row_of_every_table() -> str:
    """The whole database as text, column by column, as `SELECT *` returns it."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            parts.append(f"{table}: {cursor.fetchall()!r}")
    return "\n".join(parts)


@pytest.fixture
def sql_logged():
    connection.force_debug_cursor = True
    yield
    connection.force_debug_cursor = False


@pytest.fixture
def lived(plants, django_user_model, memory_runtime, client, caplog, sql_logged,
          django_capture_on_commit_callbacks):
    """A project whose secrets were set, used and changed; returns what everyone saw."""
    caplog.set_level(logging.DEBUG)
    # Every SQL statement and its parameters are logged too (sql_logged): ciphertext only.
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    staff = django_user_model.objects.create_user("ops", password="ops-pw-42", is_staff=True)
    plants["API token"] = token_regenerate(user=staff)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {plants['API token']}")
    responses = []

    def call(method, path, data=None):
        response = getattr(api, method)(path, data, format="json") if data is not None else \
            getattr(api, method)(path)
        assert response.status_code < 400, (method, path, response.content[:500])
        responses.append((f"{method.upper()} {path}", response.content.decode()))
        return response

    with django_capture_on_commit_callbacks(execute=False):
        call("post", "/api/projects/", {
            "name": "Hello", "slug": "hello", "repository": "octo/hello",
            "webhook_secret": plants["webhook secret"],
            "env": {"API_KEY": plants["env value"], "PORT": "8000"},
            "keep_warm_seconds": 0, "watch_seconds": 0})
        first = Deployment.objects.get(number=call(
            "post", "/api/projects/hello/deployments/", {"sha": "a" * 40}).json()["number"])
        assert rollout_drive_until_wait(first).state == State.SUCCEEDED
        # The runtime did get the value: the grep below is not vacuous.
        assert memory_runtime.running[("hello", "1")].env["API_KEY"] == plants["env value"]

        call("patch", "/api/projects/hello/", {"env": {"API_KEY": plants["changed env value"]}})
        # The private repository's deploy token and the GitHub reporting token: write-only too.
        call("patch", "/api/projects/hello/", {"git_token": plants["git token"]})
        call("patch", "/api/projects/hello/github/", {"auth": "token", "token": plants["GitHub token"]})
        # A signed delivery: the stored (encrypted) secret still verifies GitHub's signature.
        body = json.dumps({"ref": "refs/heads/main", "after": "b" * 40, "repository": {"full_name": "octo/hello"},
                           "head_commit": {"id": "b" * 40, "message": "More", "author": {"name": "Octo"}}}).encode()
        delivered = client.generic("POST", reverse("webhooks:github"), body, content_type="application/json",
                                   HTTP_X_GITHUB_EVENT="push", HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
                                   HTTP_X_HUB_SIGNATURE_256=sign(secret=plants["webhook secret"], body=body))
        assert delivered.status_code in (200, 201, 202), delivered.content
        responses.append(("POST /webhooks/github/", delivered.content.decode()))
        forged = client.generic("POST", reverse("webhooks:github"), body, content_type="application/json",
                                HTTP_X_GITHUB_EVENT="push", HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
                                HTTP_X_HUB_SIGNATURE_256=sign(secret="not-the-secret", body=body))
        assert forged.status_code == 401
        responses.append(("POST /webhooks/github/ (forged)", forged.content.decode()))
        second = Deployment.objects.get(number=2)
        assert rollout_drive_until_wait(second).state == State.SUCCEEDED
        assert memory_runtime.running[("hello", "2")].env["API_KEY"] == plants["changed env value"]

        rollback = Deployment.objects.get(number=call(
            "post", "/api/projects/hello/deployments/1/rollback/", {}).json()["number"])
        assert rollout_drive_until_wait(rollback).state == State.SUCCEEDED

    for path in ["/api/projects/", "/api/projects/hello/", "/api/projects/hello/deployments/",
                 "/api/projects/hello/deployments/1/", "/api/projects/hello/deployments/2/",
                 "/api/projects/hello/deployments/3/", "/api/projects/hello/audit/",
                 "/api/projects/hello/members/", "/api/projects/hello/metrics/", "/api/metrics/", "/api/schema/"]:
        call("get", path)

    client.force_login(staff)
    pages = []
    for path in ["/", "/insights/", "/account/", "/projects/hello/", "/projects/hello/settings/",
                 "/projects/hello/members/", "/projects/hello/activity/", "/projects/hello/insights/",
                 "/projects/hello/deployments/1/", "/projects/hello/deployments/1/rollout/",
                 "/projects/hello/deployments/2/", "/projects/hello/deployments/3/"]:
        page = client.get(path, **({"HTTP_HX_REQUEST": "true"} if path.endswith("rollout/") else {}))
        assert page.status_code in (200, 286), (path, page.status_code)  # 286: htmx, stop polling
        pages.append((path, page.content.decode()))
    logs = [f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    return {"responses": responses, "pages": pages, "logs": logs}


def test_no_secret_in_any_api_response(lived, plants):
    assert len(lived["responses"]) >= 15
    leaked = {where: _leaks(text, plants) for where, text in lived["responses"] if _leaks(text, plants)}
    assert not leaked
    # The names stay visible; the values never come back.
    detail = dict(lived["responses"])["GET /api/projects/hello/deployments/1/"]
    assert json.loads(detail)["config"]["env"] == {"API_KEY": "********", "PORT": "********"}


def test_no_secret_in_any_dashboard_page(lived, plants):
    leaked = {path: _leaks(text, plants) for path, text in lived["pages"] if _leaks(text, plants)}
    assert not leaked
    settings_page = dict(lived["pages"])["/projects/hello/settings/"]
    assert "API_KEY" in settings_page


def test_no_secret_in_events_audit_rows_or_logs(lived, plants):
    events = [f"{e.message} {json.dumps(e.data)}" for e in DeploymentEvent.objects.all()]
    audit = [f"{a.summary} {json.dumps(a.data)}" for a in AuditEntry.objects.all()]
    logs = "\n".join(lived["logs"])
    assert len(events) > 10 and len(audit) >= 3
    assert "bad signature" in logs and "INSERT INTO" in logs  # the capture did see the writes
    assert not _leaks("\n".join(events), plants)
    assert not _leaks("\n".join(audit), plants)
    assert not _leaks(logs, plants)


def test_no_secret_in_any_column_of_any_table(lived, plants):
    dump = _every_row_of_every_table()
    assert "octo/hello" in dump  # the dump does hold the rows
    assert not _leaks(dump, plants)
    assert "fernet:" in dump
