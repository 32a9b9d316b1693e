"""Missed deliveries are redelivered once; Connect creates or verifies the webhook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from deployments.models import AuditEntry, Project
from reporting import redelivery
from reporting.links import webhook_url
from reporting.models import GitHubConnection, RedeliveryRequest
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def hooked(gh_project, fake_github):
    GitHubConnection.objects.filter(project=gh_project).update(hook_id=501)
    return GitHubConnection.objects.select_related("project").get(project=gh_project)


def test_a_failed_unseen_delivery_is_redelivered_and_a_seen_one_is_not(hooked, fake_github):
    unseen = fake_github.add_delivery(hook_id=501, guid="guid-unseen", status_code=502)
    fake_github.add_delivery(hook_id=501, guid="guid-seen", status_code=500)
    fake_github.add_delivery(hook_id=501, guid="guid-ok", status_code=202)
    WebhookDelivery.objects.create(delivery_id="guid-seen", event="push", outcome="deployed")
    asks = redelivery.deliveries_recover(connection=hooked)
    assert [a.guid for a in asks] == ["guid-unseen"]
    assert fake_github.redelivered == [(501, unseen["id"])]
    entry = AuditEntry.objects.get(action="webhook.redeliver")
    assert "guid-unseen" in entry.summary and "502" in entry.summary and entry.project_id == hooked.project_id
    # The next run asks nothing again.
    assert redelivery.deliveries_recover(connection=hooked) == []
    assert len(fake_github.redelivered) == 1
    # Once the redelivery has arrived, the feed says what was recovered.
    WebhookDelivery.objects.create(delivery_id="guid-unseen", event="push", outcome="ignored", project=hooked.project)
    redelivery.deliveries_recover(connection=hooked)
    recovered = AuditEntry.objects.get(action="webhook.recovered")
    assert recovered.summary == "Recovered the missed push delivery guid-unseen: ignored"
    assert RedeliveryRequest.objects.get(guid="guid-unseen").outcome == "recovered"


def test_a_redelivery_that_failed_again_is_asked_again_and_older_ones_are_left(hooked, fake_github):
    now = datetime.now(tz=UTC)
    fake_github.add_delivery(hook_id=501, guid="old", status_code=502, delivered_at=now - timedelta(days=3, hours=1))
    first = fake_github.add_delivery(hook_id=501, guid="g1", status_code=502)
    redelivery.deliveries_recover(connection=hooked)
    again = fake_github.add_delivery(hook_id=501, guid="g1", status_code=503, redelivery=True)
    redelivery.deliveries_recover(connection=hooked)
    assert fake_github.redelivered == [(501, first["id"]), (501, again["id"])]
    assert RedeliveryRequest.objects.filter(guid="old").count() == 0  # outside GitHub's 3-day window


def test_deliveries_are_read_across_pages(hooked, fake_github):
    for i in range(130):
        fake_github.add_delivery(hook_id=501, guid=f"ok-{i}", status_code=200)
    oldest = fake_github.deliveries[501][-1]
    oldest.update(status_code=500, guid="buried")
    asks = redelivery.deliveries_recover(connection=hooked)
    assert [a.guid for a in asks] == ["buried"]
    assert len(fake_github.calls("GET", r"/deliveries$")) == 2


def test_the_hook_id_is_discovered_from_the_webhook_url(gh_project, fake_github):
    fake_github.hooks["octo/hello"] = [
        {"id": 9, "config": {"url": "https://elsewhere.example/hook"}, "events": ["push"]},
        {"id": 10, "config": {"url": webhook_url(project=gh_project)}, "events": ["push", "pull_request"]},
    ]
    fake_github.add_delivery(hook_id=10, guid="lost", status_code=502)
    connection = GitHubConnection.objects.select_related("project").get(project=gh_project)
    assert [a.guid for a in redelivery.deliveries_recover(connection=connection)] == ["lost"]
    assert GitHubConnection.objects.get(project=gh_project).hook_id == 10


def test_connect_creates_the_webhook_with_url_secret_and_events(gh_project, fake_github, user):
    from reporting.services import github_webhook_connect

    result = github_webhook_connect(project=gh_project, actor=user)
    assert result["result"] == "created"
    created = fake_github.calls("POST", r"/hooks$")[0].body
    own_url = f"https://switchback.example.com/webhooks/github/{gh_project.webhook_id}/"
    assert created["config"] == {"url": own_url, "content_type": "json",
                                 "secret": "s3cret", "insecure_ssl": "0"}
    assert sorted(created["events"]) == ["pull_request", "push"]
    assert GitHubConnection.objects.get(project=gh_project).hook_id == result["hook_id"]
    # Connect again: verified (and brought in line), not duplicated.
    assert github_webhook_connect(project=gh_project, actor=user)["result"] == "verified"
    assert len(fake_github.hooks["octo/hello"]) == 1
    assert fake_github.secrets[result["hook_id"]] == "s3cret"


def test_connect_without_a_secret_sets_one(make_project, fake_github, user):
    from reporting.services import github_webhook_connect

    project = make_project(webhook_secret="")
    GitHubConnection.objects.create(project=project)
    hook_id = github_webhook_connect(project=project, actor=user)["hook_id"]
    secret = Project.objects.get(pk=project.pk).webhook_secret
    assert len(secret) >= 32 and fake_github.secrets[hook_id] == secret


def test_connect_refused_by_github_is_a_readable_error(gh_project, fake_github, user, client):
    GitHubConnection.objects.filter(project=gh_project).update(auth="token", token="ghp_bad")
    user.is_staff = True
    user.save()
    client.force_login(user)
    response = client.post(reverse("reporting:github-connect", args=["hello"]), follow=True)
    page = response.content.decode()
    assert response.status_code == 200 and "Bad credentials" in page and "set a new token" in page
    assert fake_github.hooks == {}
