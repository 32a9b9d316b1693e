"""Rate limits, transient errors, bad credentials, a worker killed mid-send, the App flow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from deployments.services import deployment_request
from reporting import outbox, services
from reporting.models import GitHubConnection, InstallationToken, Report
from tests.reporting.conftest import SHA_A, SHA_B, send_all
from tests.rollout import rollout_drive_until_wait as drive

pytestmark = pytest.mark.django_db(transaction=True)

FULL_DEPLOY = [("deployment", SHA_A, "production"), ("status", 0, "queued"), ("status", 0, "in_progress"),
               ("status", 0, "success")]


def deploy(project, user, sha=SHA_A):
    return drive(deployment_request(project=project, sha=sha, actor=user))


def test_a_primary_rate_limit_waits_for_the_reset_and_keeps_the_order(gh_project, user, fake_github):
    reset = fake_github.rate_limit("POST", r"/statuses$", reset_in=600)
    deploy(gh_project, user)
    send_all()
    assert fake_github.sequence() == FULL_DEPLOY[:1]  # the queued status hit the limit
    head = Report.objects.filter(state=Report.State.PENDING).order_by("id").first()
    assert head.response_code == 403 and "rate limited" in head.last_error and head.attempts == 1
    assert head.next_attempt_at == datetime.fromtimestamp(reset + 1, tz=UTC)
    assert send_all() == 0  # before the reset nothing is sent, not even the later rows
    assert outbox.streams_due() == []  # and the sweep does not hand the waiting stream out
    send_all(now=datetime.fromtimestamp(reset + 2, tz=UTC))
    assert fake_github.sequence() == FULL_DEPLOY


@pytest.mark.parametrize("status,headers,body", [
    (429, {"retry-after": "90"}, {"message": "Too many requests"}),
    (403, {"retry-after": "90"}, {"message": "You have exceeded a secondary rate limit."}),
    (403, {}, {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}),
])
def test_secondary_limits_wait_as_told(gh_project, user, fake_github, status, headers, body):
    fake_github.fail("POST", r"/deployments$", status, headers=headers, body=body)
    deploy(gh_project, user)
    before = timezone.now()
    send_all()
    head = Report.objects.order_by("id").first()
    assert head.state == Report.State.PENDING and head.response_code == status
    assert head.next_attempt_at >= before + timedelta(seconds=59)
    assert GitHubConnection.objects.get(project=gh_project).problem == ""  # a limit is not a problem to fix
    send_all(now=timezone.now() + timedelta(seconds=120))
    assert fake_github.sequence() == FULL_DEPLOY


def test_a_5xx_is_retried_with_backoff(gh_project, user, fake_github):
    fake_github.fail("POST", r"/deployments$", 502, times=2)
    deploy(gh_project, user)
    send_all()
    head = Report.objects.order_by("id").first()
    assert (head.attempts, head.response_code) == (1, 502) and "502" in head.last_error
    send_all(now=timezone.now() + timedelta(seconds=30))
    send_all(now=timezone.now() + timedelta(seconds=60))
    assert fake_github.sequence() == FULL_DEPLOY
    assert Report.objects.order_by("id").first().attempts == 3


def test_a_bad_token_pauses_reporting_and_shows_what_to_fix(gh_project, user, fake_github, client, api):
    GitHubConnection.objects.filter(project=gh_project).update(auth="token", token="ghp_revoked")
    deploy(gh_project, user)
    send_all()
    assert fake_github.sequence() == []
    connection = GitHubConnection.objects.get(project=gh_project)
    assert "401" in connection.problem and "set a new token" in connection.problem_fix
    assert Report.objects.filter(state=Report.State.PENDING).count() == 4  # nothing dropped

    user.is_staff = True
    user.save()
    client.force_login(user)
    page = client.get(reverse("dashboard:project", args=["hello"])).content.decode()
    assert "GitHub reporting is failing" in page and "Bad credentials" in page and "set a new token" in page
    answer = api.get("/api/projects/hello/github/").json()
    assert "Bad credentials" in answer["problem"] and "set a new token" in answer["problem_fix"]
    assert answer["token_set"] is True and "ghp_revoked" not in str(answer)

    services.github_connection_update(project=gh_project, actor=user, token="project-token")
    send_all()
    assert fake_github.sequence() == FULL_DEPLOY
    assert GitHubConnection.objects.get(project=gh_project).problem == ""
    page = client.get(reverse("dashboard:project", args=["hello"])).content.decode()
    assert "GitHub reporting is failing" not in page


def test_an_unknown_commit_fails_that_deployment_only(gh_project, user, fake_github):
    fake_github.commits = {SHA_B}
    deploy(gh_project, user, SHA_A)
    deploy(gh_project, user, SHA_B)
    send_all()
    rows = list(Report.objects.filter(deployment__number=1).order_by("id").values_list("kind", "state",
                                                                                        "response_code"))
    assert rows[0] == ("github.deployment", "failed", 422)
    assert {state for _, state, _ in rows[1:]} == {"skipped"}
    assert [s for s in fake_github.sequence() if s[0] == "deployment"] == [("deployment", SHA_B, "production")]


def test_a_worker_killed_mid_send_loses_nothing(gh_project, user, fake_github):
    """A real worker process hangs on GitHub and is killed; after its lease the sweep sends
    everything, in order."""
    deploy(gh_project, user)
    fake_github.hang("POST", r"/deployments$")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "GITHUB_API_URL": fake_github.url,
           "GITHUB_TOKEN": "good-token", "GITHUB_TIMEOUT_SECONDS": "60",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"}
    code = ("import django; django.setup(); from reporting import outbox; "
            f"outbox.stream_send(project_id={gh_project.pk}, destination_id=None)")
    worker = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[2])
    try:
        for _ in range(600):  # a barrier: wait until the worker's request is held by GitHub
            if fake_github.hanging or worker.poll() is not None:
                break
            time.sleep(0.05)
        assert fake_github.hanging == 1
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    fake_github.release.set()  # the held request never reached GitHub's state (answered 502)
    head = Report.objects.order_by("id").first()
    assert head.state == Report.State.PENDING and head.claimed_until is not None
    assert send_all() == 0  # leased: not sent twice while the lease lasts
    later = timezone.now() + timedelta(seconds=outbox.reports_config()["LEASE_SECONDS"] + 1)
    assert outbox.streams_due(now=later) == [(gh_project.pk, None)]
    send_all(now=later)
    assert fake_github.sequence() == FULL_DEPLOY
    assert Report.objects.exclude(state=Report.State.SENT).count() == 0


@pytest.fixture
def app_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


def test_a_github_app_mints_one_installation_token_and_reuses_it(gh_project, user, fake_github, app_key, settings):
    pem, public = app_key
    settings.SWITCHBACK["GITHUB"].update(APP_ID="4242", APP_PRIVATE_KEY=pem, TOKEN="")
    fake_github.use_app(app_id="4242", public_key=public, installations={"octo/hello": 77})
    GitHubConnection.objects.filter(project=gh_project).update(auth="app")
    deploy(gh_project, user)
    send_all()
    assert fake_github.sequence() == FULL_DEPLOY
    assert len(fake_github.calls("GET", r"/installation$")) == 1
    assert len(fake_github.calls("POST", r"/access_tokens$")) == 1  # cached for the other three
    tokens = {r.headers["authorization"] for r in fake_github.calls("POST", r"/deployments")}
    assert tokens == {f"Bearer {InstallationToken.objects.get(installation_id=77).token}"}
    assert GitHubConnection.objects.get(project=gh_project).installation_id == 77
    # The token is stored encrypted.
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM reporting_installationtoken")
        assert cursor.fetchone()[0].startswith("fernet:")


def test_a_wrong_app_key_is_a_problem_to_fix(gh_project, user, fake_github, app_key, settings):
    pem, _ = app_key
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    settings.SWITCHBACK["GITHUB"].update(APP_ID="4242", APP_PRIVATE_KEY=pem)
    fake_github.use_app(app_id="4242", public_key=other, installations={"octo/hello": 77})
    GitHubConnection.objects.filter(project=gh_project).update(auth="app")
    deploy(gh_project, user)
    send_all()
    assert fake_github.sequence() == []
    assert "JSON web token" in GitHubConnection.objects.get(project=gh_project).problem


def test_settled_reports_are_pruned_after_the_retention_and_pending_ones_never(gh_project, user, fake_github):
    fake_github.fail("POST", r"/statuses$", 502, times=100)
    deploy(gh_project, user)
    send_all()
    later = timezone.now() + timedelta(days=31)
    assert outbox.reports_prune(now=later) == 1  # the sent GitHub deployment row
    assert Report.objects.filter(state=Report.State.PENDING).count() == 3
    assert outbox.reports_prune(now=timezone.now()) == 0
