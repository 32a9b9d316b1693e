"""Report rows are written in the transaction of the change they report (a transactional
outbox): they commit with it or not at all, and a process that dies right after the commit,
before any after-commit hook ran, still leaves them for the sweep to send."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from deployments.models import Deployment, State
from deployments.services import deployment_request
from deployments.transitions import deployment_transition
from reporting import outbox
from reporting.models import Report
from tests.reporting.conftest import SHA_A, send_all
from tests.rollout import rollout_drive_until_wait as drive

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


def _die_after_commit() -> None:
    """What a process killed right after COMMIT leaves undone: every after-commit hook."""
    connection.run_on_commit = []


def test_a_new_deployments_report_commits_with_it_even_if_the_process_dies_after_commit(
        gh_project, user, fake_github, _quiet_broker):
    with transaction.atomic():
        d = deployment_request(project=gh_project, sha=SHA_A, actor=user)
        # Written with the deployment, before the commit.
        assert set(Report.objects.filter(deployment=d).values_list("event", flat=True)) == {"created"}
        _die_after_commit()
    assert _quiet_broker == []  # no worker was told: the process died
    assert outbox.streams_due() == [(gh_project.pk, None)]  # the sweep finds the row
    assert send_all() == Report.objects.filter(deployment=d).count()
    assert fake_github.sequence() == [("deployment", SHA_A, "production"), ("status", 0, "queued")]


def test_a_transitions_reports_roll_back_with_it(gh_project, user, fake_github):
    d = drive(deployment_request(project=gh_project, sha=SHA_A, actor=user))
    assert d.state == State.SUCCEEDED
    before = Report.objects.count()
    second = deployment_request(project=gh_project, sha="b" * 40, actor=user)
    rows_with_request = Report.objects.count()
    with pytest.raises(Rollback), transaction.atomic():
        assert deployment_transition(deployment=second, to=State.FAILED, reason="boom") is not None
        assert Report.objects.count() > rows_with_request  # the failure's rows, inside the transaction
        raise Rollback
    # The change did not happen, and neither did its reports.
    assert Deployment.objects.get(pk=second.pk).state == State.QUEUED
    assert Report.objects.count() == rows_with_request > before


def test_a_failing_recorder_neither_breaks_the_change_nor_loses_the_transaction(gh_project, user, fake_github,
                                                                                monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("reporting bug")

    monkeypatch.setattr(outbox.github_reports, "github_rows", broken)
    d = drive(deployment_request(project=gh_project, sha=SHA_A, actor=user))
    assert d.state == State.SUCCEEDED  # the rollout went on; its reports were skipped
    assert not Report.objects.filter(deployment=d).exists()
