"""The reporting API and page: write-only secrets, validation, permissions."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.urls import reverse

from deployments.models import AuditEntry, Membership, Project
from reporting.models import GitHubConnection

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(user, make_project):
    project = make_project()
    Membership.objects.create(project=project, user=user, role="admin")
    return project


def test_github_settings_round_trip_with_a_write_only_token(admin, api):
    assert api.get("/api/projects/hello/github/").json()["configured"] is False
    answer = api.patch("/api/projects/hello/github/", {"auth": "token", "token": "ghp_abc123", "environment": "prod",
                                                       "commit_status": True}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["auth"] == "token" and body["token_set"] is True and body["environment"] == "prod"
    assert "ghp_abc123" not in answer.content.decode()
    project = Project.objects.get(slug="hello")
    assert body["webhook_url"].endswith(f"/webhooks/github/{project.webhook_id}/")  # the project's own URL
    with db.cursor() as cursor:
        cursor.execute("SELECT token FROM reporting_githubconnection")
        assert cursor.fetchone()[0].startswith("fernet:")
    assert GitHubConnection.objects.get().token == "ghp_abc123"
    entry = AuditEntry.objects.get(action="github.update")
    assert "ghp_abc123" not in str(entry.data) + entry.summary


@pytest.mark.parametrize("data,field", [
    ({"auth": "root"}, "auth"),
    ({"token": "ghp_$(reboot)"}, "token"),
    ({"environment": "prod\nX-Injected: 1"}, "environment"),
    ({"installation_id": -3}, "installation_id"),
    ({"hook_id": "abc"}, "hook_id"),
])
def test_bad_github_settings_are_4xx_json_and_write_nothing(admin, api, data, field):
    answer = api.patch("/api/projects/hello/github/", data, format="json")
    assert answer.status_code == 400 and field in answer.json()["message"]
    assert GitHubConnection.objects.count() == 0


def test_a_viewer_reads_but_cannot_change_or_test(make_project, user, api):
    project = make_project()
    Membership.objects.create(project=project, user=user, role="viewer")
    assert api.get("/api/projects/hello/github/").status_code == 200
    assert api.patch("/api/projects/hello/github/", {"enabled": False}, format="json").status_code == 403
    assert api.post("/api/projects/hello/github/connect/").status_code == 403
    assert api.post("/api/projects/hello/notifications/", {}, format="json").status_code == 403


def test_connect_without_credentials_is_a_400_not_a_500(admin, api):
    answer = api.post("/api/projects/hello/github/connect/")
    assert answer.status_code == 400 and answer.json()["error"] == "no_credentials"


def test_the_reporting_page_saves_settings_and_shows_form_errors(admin, client, user):
    client.force_login(user)
    page = reverse("reporting:page", args=["hello"])
    assert client.get(page).status_code == 200
    bad = client.post(reverse("reporting:github-save", args=["hello"]),
                      {"auth": "token", "token": "bad token!", "environment": "production", "enabled": "on"})
    assert bad.status_code == 400 and "letters, digits" in bad.content.decode()
    assert GitHubConnection.objects.count() == 0
    ok = client.post(reverse("reporting:github-save", args=["hello"]),
                     {"auth": "token", "token": "ghp_ok", "environment": "production", "enabled": "on"})
    assert ok.status_code == 302 and GitHubConnection.objects.get().token == "ghp_ok"
    html = client.get(page).content.decode()
    assert "ghp_ok" not in html and "one is set" in html
    bad_dest = client.post(reverse("reporting:destination-add", args=["hello"]),
                           {"name": "x", "kind": "slack", "url": "https://192.168.1.1/x",
                            "events": ["deployment.live"]})
    assert bad_dest.status_code == 400 and "private" in bad_dest.content.decode()


def test_the_reporting_page_refreshes_itself_while_reports_wait_and_stops_when_none_do(admin, client, user):
    from django.utils import timezone

    from reporting.models import NotificationDestination, Report

    client.force_login(user)
    destination = NotificationDestination.objects.create(project=admin, name="ops", kind="webhook",
                                                         url="https://hooks.example.com/x", events=["deployment.live"])
    page = client.get(reverse("reporting:page", args=["hello"])).content.decode()
    assert 'hx-trigger="every 2s"' not in page  # nothing waits: no polling
    row = Report.objects.create(project=admin, destination=destination, kind=Report.Kind.NOTIFICATION,
                                event="deployment.live", payload={}, next_attempt_at=timezone.now())
    page = client.get(reverse("reporting:page", args=["hello"])).content.decode()
    activity = reverse("reporting:activity", args=["hello"])
    assert f'hx-get="{activity}" hx-trigger="every 2s"' in page
    polled = client.get(activity, headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "<td>Pending</td>" in polled.content.decode()
    # The destination's log is swapped in out of band.
    assert f'id="destination-log-{destination.pk}" hx-swap-oob="true"' in polled.content.decode()
    Report.objects.filter(pk=row.pk).update(state=Report.State.SENT, response_code=200, sent_at=timezone.now())
    done = client.get(activity, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx stops polling, and shows the final rows
    assert 'hx-trigger="every 2s"' not in done.content.decode() and ">200<" in done.content.decode()


def test_a_stranger_cannot_poll_another_projects_reporting(make_project, client, django_user_model):
    make_project()
    stranger = django_user_model.objects.create_user("mallory", password="x" * 12)
    client.force_login(stranger)
    assert client.get(reverse("reporting:activity", args=["hello"])).status_code == 404
