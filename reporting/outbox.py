"""The reports outbox: rows written after a rollout's commit, sent in order by a task.

A stream is one project's GitHub reports, or one notification destination's.  Its rows go
in id order (a status never overtakes its GitHub deployment); a sender claims the head row
with a lease, sends one request, records the answer, and goes on.  A worker that dies
mid-send leaves the lease to expire and the sweep sends the row again (at least once).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min, Q, Subquery
from django.utils import timezone

from deployments.models import Deployment, Project

from . import github_reports, notifications
from .models import GitHubConnection, NotificationDestination, Report

logger = logging.getLogger(__name__)

SEND_TASK = "reporting.tasks.stream_send"

# rollout event (deployments.listeners.RolloutEvent values, plus "created") -> notification event
NOTIFY_EVENTS = {
    "started": notifications.Event.STARTED,
    "went-live": notifications.Event.LIVE,
    "failed": notifications.Event.FAILED,
    "rolled-back": notifications.Event.ROLLED_BACK,
    "promotion-waiting": notifications.Event.PROMOTION_WAITING,
    "promotion-fired": notifications.Event.PROMOTION_FIRED,
}


def reports_config() -> dict:
    return settings.SWITCHBACK["REPORTS"]


def project_reports_anywhere(*, project_id: int) -> bool:
    """Whether the project has an enabled GitHub connection or notification destination.

    Asked after every webhook delivery's commit (twice: the new deployment and the one it
    superseded), and the answer is almost always no.  Written as one plain statement: the
    ORM's version of the same question (a join through the deployment, two LEFT OUTER
    JOINs and an OR) cost about 1 ms of CPU per call to build, more than PostgreSQL takes
    to answer it (profiled with bench/webhook_ingest.py, docs/benchmarks.md)."""
    quote = connection.ops.quote_name
    github, destinations = (quote(GitHubConnection._meta.db_table), quote(NotificationDestination._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {github} WHERE project_id = %s AND enabled) "
                       f"OR EXISTS (SELECT 1 FROM {destinations} WHERE project_id = %s AND enabled)",
                       [project_id, project_id])
        (reporting,) = cursor.fetchone()
    return bool(reporting)


def reports_for_event(*, event: str, deployment_id: int, project_id: int | None = None) -> list[Report]:
    """Write the rows one rollout event becomes; hand their streams to a worker once the
    transaction commits.

    Runs inside the rollout's transaction (a recorder), so the rows commit with the change:
    the one-statement check first (most projects report nowhere), then the reads and the
    insert in a savepoint of their own, so a failure rolls back only these rows.  It never
    calls out, so a GitHub or a destination that hangs cannot touch the rollout.
    `project_id` (the deployment's) saves looking it up."""
    # Most projects report nowhere: answer that with one small query, before loading the
    # deployment and its project (whose secrets would be decrypted) on every webhook delivery.
    if project_id is None:
        project_id = Deployment.objects.filter(pk=deployment_id).values_list("project_id", flat=True).first()
    if project_id is None or not project_reports_anywhere(project_id=project_id):
        return []
    try:
        with transaction.atomic():  # a savepoint: a failure here rolls back only these rows
            return _rows_write(event=event, deployment_id=deployment_id)
    except Exception:  # noqa: BLE001 - reporting never fails a rollout
        logger.exception("could not write the %s reports of deployment %s", event, deployment_id)
        return []


def _rows_write(*, event: str, deployment_id: int) -> list[Report]:
    deployment = (Deployment.objects.select_related("project", "project__live_deployment", "rollback_of")
                  .filter(pk=deployment_id).first())
    if deployment is None:
        return []
    project = deployment.project
    rows: list[Report] = []
    connection = GitHubConnection.objects.filter(project=project, enabled=True).first()
    if connection is not None:
        rows += github_reports.github_rows(event=event, deployment=deployment, connection=connection)
    notify_event = NOTIFY_EVENTS.get(event)
    if notify_event == notifications.Event.LIVE and deployment.trigger == "rollback":
        notify_event = None  # "rolled back" says it
    if notify_event is not None:
        destinations = [d for d in NotificationDestination.objects.filter(project=project, enabled=True)
                        if notify_event in (d.events or [])]
        if destinations:
            payload = notifications.generic_payload(event=notify_event, project=project, deployment=deployment)
            rows += [Report(project=project, destination=d, deployment=deployment, kind=Report.Kind.NOTIFICATION,
                            event=notify_event, payload=payload) for d in destinations]
    if not rows:
        return []
    now = timezone.now()
    for row in rows:
        row.next_attempt_at = now
    rows = Report.objects.bulk_create(rows)
    streams = sorted({(r.project_id, r.destination_id or 0) for r in rows})

    def kick() -> None:
        for project_id, destination_id in streams:
            stream_kick(project_id=project_id, destination_id=destination_id or None)

    transaction.on_commit(kick)
    return rows


def notification_test(*, destination: NotificationDestination) -> Report:
    payload = notifications.generic_payload(
        event=notifications.Event.TEST, project=destination.project, deployment=None,
        text=f"{destination.project.name}: a test notification from Switchback to {destination.name}")
    row = Report.objects.create(project_id=destination.project_id, destination=destination,
                                kind=Report.Kind.NOTIFICATION, event=notifications.Event.TEST, payload=payload,
                                next_attempt_at=timezone.now())
    transaction.on_commit(lambda: stream_kick(project_id=destination.project_id, destination_id=destination.pk))
    return row


def stream_kick(*, project_id: int, destination_id: int | None) -> bool:
    """Ask a worker to send the stream now; a broker outage only delays it to the sweep."""
    from config.celery import app

    try:
        if app.conf.task_always_eager:
            app.tasks[SEND_TASK].apply_async(args=[project_id, destination_id or 0], retry=False)
        else:
            app.send_task(SEND_TASK, args=[project_id, destination_id or 0], retry=False,
                          queue=settings.REPORTS_QUEUE)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep sends it
        logger.warning("could not hand reports of project %s to a worker: %s", project_id, exc.__class__.__name__)
        return False
    return True


def streams_due(*, now=None) -> list[tuple[int, int | None]]:
    """Streams whose oldest pending row is due and not leased (what the sweep hands out)."""
    now = now or timezone.now()
    # Only a stream's head counts: rows behind a rate-limited head are not "due".
    heads = (Report.objects.filter(state=Report.State.PENDING).values("project_id", "destination_id")
             .annotate(head=Min("id")).values("head"))
    due = (Report.objects.filter(pk__in=Subquery(heads), next_attempt_at__lte=now)
           .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
           .values_list("project_id", "destination_id"))
    return sorted(set(due), key=lambda s: (s[0], s[1] or 0))


def _head(*, project_id: int, destination_id: int | None) -> Report | None:
    return (Report.objects.filter(project_id=project_id, destination_id=destination_id, state=Report.State.PENDING)
            .order_by("id").first())


def _claim(row: Report, *, now) -> bool:
    lease = timedelta(seconds=float(reports_config()["LEASE_SECONDS"]))
    return bool(Report.objects.filter(pk=row.pk, state=Report.State.PENDING)
                .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
                .update(claimed_until=now + lease))


def backoff_seconds(attempts: int) -> float:
    """5 s, 10 s, 20 s ... capped at an hour, with jitter so streams do not retry in step."""
    base = min(3600.0, 5.0 * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)


def stream_send(*, project_id: int, destination_id: int | None, now=None, limit: int = 200) -> int:
    """Send the stream's due rows in order until one must wait; returns how many were settled."""
    from .sender import Outcome, report_send

    settled = 0
    for _ in range(limit):
        current = now or timezone.now()
        row = _head(project_id=project_id, destination_id=destination_id)
        if row is None or row.next_attempt_at > current or not _claim(row, now=current):
            break
        outcome: Outcome = report_send(report=row)
        attempts = row.attempts + 1
        fields = {"attempts": attempts, "claimed_until": None, "response_code": outcome.code,
                  "last_error": outcome.error[:2000]}
        if outcome.state in (Report.State.SENT, Report.State.SKIPPED, Report.State.FAILED):
            fields.update(state=outcome.state, sent_at=timezone.now() if outcome.state == Report.State.SENT else None)
        elif attempts >= int(reports_config()["MAX_ATTEMPTS"]):
            fields.update(state=Report.State.FAILED,
                          last_error=f"Gave up after {attempts} attempts: {outcome.error}"[:2000])
        else:
            retry_at = outcome.retry_at or current + timedelta(seconds=backoff_seconds(attempts))
            fields.update(next_attempt_at=retry_at)
        Report.objects.filter(pk=row.pk).update(**fields)
        if fields.get("state") is None:
            break  # the head waits: later rows wait behind it
        settled += 1
    return settled


def reports_sweep(*, now=None) -> int:
    """Hand every due stream to a worker (rows never handed out, retries, expired leases)."""
    count = 0
    for project_id, destination_id in streams_due(now=now):
        if not stream_kick(project_id=project_id, destination_id=destination_id):
            break
        count += 1
    return count


def reports_prune(*, now=None) -> int:
    """Forget settled rows older than REPORTS_RETENTION_DAYS (pending rows are never pruned)."""
    cutoff = (now or timezone.now()) - timedelta(days=float(reports_config()["RETENTION_DAYS"]))
    deleted, _ = (Report.objects.filter(created_at__lt=cutoff)
                  .exclude(state=Report.State.PENDING).delete())
    return deleted


def github_reports_resume(*, project: Project) -> int:
    """Credentials changed: paused GitHub reports are due now."""
    return Report.objects.filter(project=project, destination=None, state=Report.State.PENDING).update(
        next_attempt_at=timezone.now())
