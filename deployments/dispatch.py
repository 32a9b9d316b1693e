"""The dispatch port: how the domain hands work to workers, without importing the tasks.

Tasks are published by name through the Celery app, so services and the engine never
import `deployments.tasks` (which imports them): the import graph has no circle.  Every
function here may raise when the broker is down; callers decide what that means.
"""

from __future__ import annotations

from django.conf import settings

ROLLOUT_ADVANCE = "deployments.tasks.rollout_advance"
ROLLOUT_WATCH = "deployments.tasks.rollout_watch"
REVISION_RETIRE = "deployments.tasks.revision_retire"
REVISIONS_TIDY = "deployments.tasks.revisions_tidy"


def _send(name: str, *, args: list, countdown: float | None = None, queue: str | None = None) -> None:
    from config.celery import app

    if app.conf.task_always_eager:  # tests and demos that run tasks in-process
        app.tasks[name].apply_async(args=args, countdown=countdown or None, queue=queue, retry=False)
        return
    app.send_task(name, args=args, countdown=countdown or None, queue=queue, retry=False)


def rollout_advance_send(*, deployment_id: int, token: str, countdown: float = 0, urgent: bool = False) -> None:
    # Rollbacks have their own queue: they must never wait behind a build.
    queue = settings.SWITCH_QUEUE if urgent else settings.CELERY_TASK_DEFAULT_QUEUE
    _send(ROLLOUT_ADVANCE, args=[deployment_id, token], countdown=countdown, queue=queue)


def rollout_watch_send(*, deployment_id: int, countdown: float = 0) -> None:
    _send(ROLLOUT_WATCH, args=[deployment_id], countdown=countdown)


def revision_retire_send(*, project_id: int, revision: str, countdown: float) -> None:
    _send(REVISION_RETIRE, args=[project_id, revision], countdown=countdown)


def revisions_tidy_send(*, project_id: int) -> None:
    _send(REVISIONS_TIDY, args=[project_id])
