"""Sending one outbox row: one HTTP request, and what its answer means for the row."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.utils import timezone

from deployments.errors import ValidationError

from . import notifications, url_guard
from .github_auth import github_client_for
from .github_client import GitHubError, Permanent, RateLimited, Transient
from .models import GitHubConnection, GitHubDeployment, Report

logger = logging.getLogger(__name__)

CREDENTIALS_PAUSE = timedelta(minutes=15)  # a bad token: try again later, or at once when it is changed


@dataclass(frozen=True)
class Outcome:
    state: str  # Report.State; PENDING means "try again"
    code: int | None = None
    error: str = ""
    retry_at: datetime | None = None


def report_send(*, report: Report) -> Outcome:
    try:
        if report.destination_id is None:
            return _github_send(report)
        return _notification_send(report)
    except Exception as exc:  # noqa: BLE001 - a bug in one row must not wedge the stream forever
        logger.exception("sending report %s failed", report.pk)
        return Outcome(Report.State.PENDING, error=f"Internal error: {exc.__class__.__name__}: {exc}")


# --- GitHub -----------------------------------------------------------------------------------


def _problem_set(connection: GitHubConnection, error: Permanent) -> None:
    GitHubConnection.objects.filter(pk=connection.pk).update(problem=error.message[:2000], problem_fix=error.fix,
                                                            problem_at=timezone.now())


def _problem_clear(connection: GitHubConnection) -> None:
    if connection.problem:
        GitHubConnection.objects.filter(pk=connection.pk).update(problem="", problem_fix="", problem_at=None)


def _github_send(report: Report) -> Outcome:
    connection = (GitHubConnection.objects.select_related("project").filter(project_id=report.project_id)
                  .first())
    if connection is None or not connection.enabled:
        return Outcome(Report.State.SKIPPED, error="GitHub reporting is off for this project.")
    payload = report.payload
    try:
        if report.kind == Report.Kind.GITHUB_DEPLOYMENT:
            if GitHubDeployment.objects.filter(deployment_id=report.deployment_id).exists():
                return Outcome(Report.State.SENT, error="Already created (a retried send).")
            client = github_client_for(connection=connection)
            github_id = None
            if report.attempts or report.claimed_until is not None:  # an earlier attempt may have landed
                github_id = client.deployment_find(ref=payload["ref"], environment=payload["environment"],
                                                   number=payload["payload"]["switchback_deployment"])
            github_id = github_id or client.deployment_create(ref=payload["ref"], environment=payload["environment"],
                                                 description=payload["description"], payload=payload["payload"])
            GitHubDeployment.objects.create(deployment_id=report.deployment_id, github_id=github_id,
                                            environment=payload["environment"])
            code = 201
        elif report.kind == Report.Kind.GITHUB_STATUS:
            mirror = GitHubDeployment.objects.filter(deployment_id=report.deployment_id).first()
            if mirror is None:
                return Outcome(Report.State.SKIPPED, error="No GitHub deployment was created for this deployment.")
            client = github_client_for(connection=connection)
            client.deployment_status_create(deployment_id=mirror.github_id, state=payload["state"],
                                            description=payload["description"], log_url=payload["log_url"],
                                            environment_url=payload["environment_url"],
                                            environment=payload["environment"])
            code = 201
        elif report.kind == Report.Kind.GITHUB_COMMIT_STATUS:
            client = github_client_for(connection=connection)
            client.commit_status_create(sha=payload["sha"], state=payload["state"],
                                        description=payload["description"], target_url=payload["target_url"])
            code = 201
        else:
            return Outcome(Report.State.FAILED, error=f"Unknown report kind {report.kind}.")
    except RateLimited as exc:
        return Outcome(Report.State.PENDING, code=exc.status, error=exc.message, retry_at=exc.retry_at)
    except Permanent as exc:
        _problem_set(connection, exc)
        if exc.credentials:
            # The whole project's reporting waits for better credentials; nothing is dropped.
            return Outcome(Report.State.PENDING, code=exc.status, error=f"{exc.message} {exc.fix}".strip(),
                           retry_at=timezone.now() + CREDENTIALS_PAUSE)
        return Outcome(Report.State.FAILED, code=exc.status, error=f"{exc.message} {exc.fix}".strip())
    except (Transient, GitHubError) as exc:
        return Outcome(Report.State.PENDING, code=exc.status, error=exc.message)
    _problem_clear(connection)
    return Outcome(Report.State.SENT, code=code)


# --- notifications ----------------------------------------------------------------------------


def _notification_send(report: Report) -> Outcome:
    destination = report.destination
    if destination is None or not destination.enabled:
        return Outcome(Report.State.SKIPPED, error="The destination is disabled or gone.")
    try:
        target = url_guard.destination_resolve(destination.url)
    except ValidationError as exc:
        if exc.code == "unresolvable":
            return Outcome(Report.State.PENDING, error=exc.message)
        return Outcome(Report.State.FAILED, error=exc.message)
    body, headers = notifications.request_for(kind=destination.kind, payload=report.payload,
                                              secret=destination.secret, delivery=str(report.pk))
    headers.update({"Host": target.host, "User-Agent": "Switchback-Hookshot"})
    seconds = float(settings.SWITCHBACK["NOTIFY"]["TIMEOUT_SECONDS"])
    extensions = {"sni_hostname": target.host.rsplit(":", 1)[0]} if target.scheme == "https" else {}
    try:
        with httpx.Client(timeout=httpx.Timeout(seconds, connect=min(seconds, 5.0)), follow_redirects=False) as client:
            response = client.post(target.url, content=body, headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        return Outcome(Report.State.PENDING, error=f"{exc.__class__.__name__}: could not deliver ({exc})"[:500])
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(Report.State.SENT, code=code)
    detail = response.text[:300]
    if code == 429 or code >= 500 or code == 408:
        retry_after = response.headers.get("retry-after", "")
        retry_at = timezone.now() + timedelta(seconds=min(int(retry_after), 3600)) if retry_after.isdigit() else None
        return Outcome(Report.State.PENDING, code=code, error=f"The destination answered {code}: {detail}",
                       retry_at=retry_at)
    return Outcome(Report.State.FAILED, code=code,
                   error=f"The destination answered {code}: {detail} (check its URL; Slack answers 404/410 "
                   "for a removed webhook)")
