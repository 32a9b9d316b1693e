"""Reads for the pages and the API: reporting's state, a stream's delivery log."""

from __future__ import annotations

from django.db.models import Count, Q

from .models import GitHubConnection, NotificationDestination, Report


def github_connection_get(*, project) -> GitHubConnection | None:
    return GitHubConnection.objects.filter(project=project).first()


def reporting_status(*, project) -> dict:
    """What the project page's status line says."""
    connection = github_connection_get(project=project)
    counts = Report.objects.filter(project=project).aggregate(
        pending=Count("id", filter=Q(state=Report.State.PENDING)),
        retrying=Count("id", filter=Q(state=Report.State.PENDING, attempts__gt=0)),
        failed=Count("id", filter=Q(state=Report.State.FAILED)),
    )
    return {"github": connection, "problem": connection.problem if connection else "",
            "fix": connection.problem_fix if connection else "", **counts}


def report_list(*, project, destination_id: int | None = None, github: bool = False, limit: int = 50):
    rows = Report.objects.filter(project=project).select_related("deployment", "destination").order_by("-id")
    if github:
        rows = rows.filter(destination=None)
    elif destination_id is not None:
        rows = rows.filter(destination_id=destination_id)
    return rows[:limit]


def destination_list(*, project):
    return NotificationDestination.objects.filter(project=project)
