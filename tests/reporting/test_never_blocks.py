"""Reporting never changes a rollout's outcome or timing: GitHub hanging for 30 s holds
only the sender, never the rollout or the rollback (asserted by ordering, not by time)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from deployments.models import State
from deployments.services import deployment_request, deployment_rollback
from reporting import outbox
from reporting.models import Report
from tests.reporting.conftest import SHA_A, SHA_B, send_all
from tests.rollout import rollout_drive_until_wait as drive

pytestmark = pytest.mark.django_db(transaction=True)


def _sender(project_id: int, done: list) -> None:
    try:
        done.append(outbox.stream_send(project_id=project_id, destination_id=None))
    finally:
        connection.close()


def test_a_rollback_completes_while_github_holds_the_sender(gh_project, user, fake_github, memory_runtime,
                                                             settings):
    settings.SWITCHBACK["GITHUB"]["TIMEOUT_SECONDS"] = 60.0
    drive(deployment_request(project=gh_project, sha=SHA_A, actor=user))
    drive(deployment_request(project=gh_project, sha=SHA_B, actor=user))
    send_all()
    before = len(fake_github.requests)
    fake_github.hang("POST", r"/deployments$")  # the rollback's GitHub deployment will hang
    rollback = deployment_rollback(project=gh_project, number=1, actor=user)
    done: list = []
    sender = threading.Thread(target=_sender, args=(gh_project.pk, done))
    sender.start()
    try:
        fake_github_wait_hanging(fake_github, sender)
        assert drive(rollback).state == State.SUCCEEDED
        assert memory_runtime.weights["hello"] == {"1": 100}
        # The rollback went live and its reports were written while GitHub still held the request.
        assert fake_github.hanging == 1 and done == []
        assert len(fake_github.requests) == before + 1  # only the sender's held request
        assert Report.objects.filter(state=Report.State.PENDING).count() == 5
    finally:
        fake_github.release.set()
        sender.join(timeout=60)
    send_all()
    assert fake_github.sequence()[-5:] == [
        ("deployment", SHA_A, "production"), ("status", 2, "queued"), ("status", 2, "in_progress"),
        ("status", 2, "success"), ("status", 1, "inactive")]


def fake_github_wait_hanging(fake, sender: threading.Thread) -> None:
    """A barrier: return once the fake holds the sender's request."""
    import time

    for _ in range(1200):
        if fake.hanging or not sender.is_alive():
            break
        time.sleep(0.025)
    assert fake.hanging == 1


def test_the_sender_times_out_on_a_hanging_github_and_retries_later(gh_project, user, fake_github, settings):
    settings.SWITCHBACK["GITHUB"]["TIMEOUT_SECONDS"] = 0.5  # the fake holds requests for 30 s
    fake_github.hang("POST", r"/deployments$")
    d = drive(deployment_request(project=gh_project, sha=SHA_A, actor=user))
    assert d.state == State.SUCCEEDED
    # Nothing in the rollout's path talks to GitHub: the rollout wrote rows, and that is all.
    assert fake_github.requests == [] and Report.objects.filter(state=Report.State.PENDING).count() == 4
    send_all()
    head = Report.objects.order_by("id").first()
    assert head.state == Report.State.PENDING and "did not answer in time" in head.last_error
    assert fake_github.hanging == 1  # GitHub still holds it; the sender has moved on
    fake_github.release.set()


def test_a_failing_reporting_listener_changes_nothing(gh_project, user, fake_github, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("reporting is broken")

    monkeypatch.setattr(outbox, "reports_for_event", broken)
    d = drive(deployment_request(project=gh_project, sha=SHA_A, actor=user))
    assert d.state == State.SUCCEEDED and d.live_at is not None
    assert Report.objects.count() == 0


def test_the_cheap_reporting_check_sees_enabled_connections_and_destinations_only(make_project):
    """project_reports_anywhere (the hand-written EXISTS asked after every delivery)."""
    from reporting.models import GitHubConnection, NotificationDestination
    from reporting.outbox import project_reports_anywhere

    quiet, github, notified = (make_project(slug=s, repository=f"octo/{s}") for s in ("quiet", "gh", "notified"))
    GitHubConnection.objects.create(project=quiet, enabled=False)
    NotificationDestination.objects.create(project=quiet, name="off", kind="webhook", url="https://x.example",
                                           enabled=False)
    GitHubConnection.objects.create(project=github)
    NotificationDestination.objects.create(project=notified, name="on", kind="webhook", url="https://x.example")
    assert [project_reports_anywhere(project_id=p.pk) for p in (quiet, github, notified)] == [False, True, True]
