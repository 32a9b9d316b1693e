"""Celery tasks: adapters that take ids, call one domain function, and retry transient trouble.

Acknowledged late (a worker killed mid-step leaves the message, and the outbox sweep
re-enqueues stalled rollouts).  How many transient failures a rollout may have, and for
how long, is decided by the engine from what the database recorded, not by Celery's
retry counter (which a re-hand-out by the sweep would reset).
"""

from __future__ import annotations

import contextlib
import logging
import threading

from celery import shared_task
from django.db import DatabaseError, connections

from . import engine, lifecycle, reconciler, services, watch
from .errors import SwitchbackError, TransientError
from .models import Deployment, Project
from .timeline import deployment_heartbeat, event_record

logger = logging.getLogger(__name__)

MAX_INLINE_STEPS = 20
HEARTBEAT_SECONDS = 10.0  # well inside OUTBOX_STALE_SECONDS: a long silent build is not "stalled"
TRANSIENT_BACKOFF = (1, 2, 5, 10, 30, 60)


@contextlib.contextmanager
def _heartbeat(deployment_id: int):
    """While a step runs (a build can be silent for minutes), keep the outbox mark fresh
    so the sweep does not hand the rollout to a second worker."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(HEARTBEAT_SECONDS):
                deployment_heartbeat(deployment_id=deployment_id)
        finally:
            connections.close_all()  # this thread's own database connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{deployment_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def _backoff(retries: int) -> int:
    return TRANSIENT_BACKOFF[min(retries, len(TRANSIENT_BACKOFF) - 1)]


@shared_task(bind=True, acks_late=True, max_retries=None)
def rollout_advance(self, deployment_id: int, token: str = "") -> None:
    """Run the deployment's steps until one asks to wait, then schedule the next."""
    if token and not Deployment.objects.filter(pk=deployment_id, step_token=token).exists():
        return  # a newer hand-out of this rollout exists: let that chain act
    try:
        for _ in range(MAX_INLINE_STEPS):
            with _heartbeat(deployment_id):
                delay = engine.rollout_step(deployment_id=deployment_id)
            if delay is None:
                return
            if delay > 0:
                services.deployment_enqueue(deployment_id=deployment_id, countdown=delay)
                return
        services.deployment_enqueue(deployment_id=deployment_id)
    except (TransientError, DatabaseError) as exc:
        # The engine has counted it against the phase's deadline (and fails the rollout
        # past it); a database error is retried as it comes.
        with contextlib.suppress(DatabaseError):
            event_record(deployment=deployment_id, message=f"Transient trouble, retrying: {exc}")
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(bind=True, acks_late=True, max_retries=10)
def rollout_watch(self, deployment_id: int) -> None:
    try:
        delay = watch.rollout_watch_step(deployment_id=deployment_id)
    except (TransientError, DatabaseError) as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    if delay is not None:
        rollout_watch.apply_async(args=[deployment_id], countdown=delay)


@shared_task(bind=True, acks_late=True, max_retries=10)
def revision_retire(self, project_id: int, revision: str) -> None:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    try:
        lifecycle.revision_retire_if_unused(project=project, revision=revision,
                                            drain_seconds=float(project.drain_seconds))
    except (TransientError, DatabaseError) as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(bind=True, acks_late=True, max_retries=10)
def revisions_tidy(self, project_id: int) -> None:
    """After a switch made elsewhere (a warm rollback within its API request)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    try:
        lifecycle.revisions_tidy(project=project)
    except (TransientError, DatabaseError) as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task
def outbox_sweep() -> int:
    """Publish what was stored while the broker was down, and resume stalled rollouts."""
    return services.outbox_sweep()


@shared_task
def reconcile() -> None:
    """Converge what runs with what the database wants (see deployments.reconciler)."""
    reconciler.reconcile_all()


@shared_task
def liveness_check() -> None:
    """Restart replicas that fail liveness; the watch window after a switch rolls back instead."""
    for project in watch.projects_for_liveness_check():
        try:
            watch.liveness_check(project=project)
        except SwitchbackError as exc:
            logger.warning("liveness check of %s failed: %s", project.slug, exc.message)
