"""A deployment's timeline and its outbox heartbeat: the small writes every layer makes.

Kept apart from `services` so the engine, the lifecycle and the services can all write
events without importing one another.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from django.db import transaction
from django.utils import timezone

from .models import Deployment, DeploymentEvent
from .progress import Progress

_deferred = threading.local()


@contextlib.contextmanager
def timeline_deferred() -> Iterator[None]:
    """Inside a transaction: hold the timeline entries written meanwhile and insert them in
    one statement, in order, when the block ends (nothing if it raises).  For a path whose
    every step commits at once and whose latency counts, where the entries are only read
    after the commit: a warm rollback switched in its request writes five entries before
    and after its switch, and each INSERT was a round trip before the traffic moved."""
    if getattr(_deferred, "events", None) is not None:  # nested: the outer block writes
        yield
        return
    _deferred.events = []
    try:
        yield
        events = _deferred.events
    finally:
        _deferred.events = None
    if events:
        DeploymentEvent.objects.bulk_create(events)


def event_save(event: DeploymentEvent) -> DeploymentEvent:
    """Write one timeline entry (or hold it, see timeline_deferred)."""
    held = getattr(_deferred, "events", None)
    if held is not None:
        held.append(event)
        return event
    event.save()
    return event


def event_record(*, deployment: Deployment | int, message: str,
                 kind: str = DeploymentEvent.Kind.INFO, data: dict | None = None) -> DeploymentEvent:
    deployment_id = deployment if isinstance(deployment, int) else deployment.pk
    return event_save(DeploymentEvent(deployment_id=deployment_id, kind=kind, message=message, data=data or {}))


def deployment_heartbeat(*, deployment_id: int) -> None:
    """Push the outbox mark forward: a worker is still on this rollout."""
    Deployment.objects.filter(pk=deployment_id).update(enqueued_at=timezone.now())


def progress_change(*, deployment: Deployment, change: Callable[[Progress], None]) -> Progress:
    """Change a rollout's stored progress under its row lock (a promote may write it while
    a step does); `deployment.progress` is refreshed too."""
    with transaction.atomic():
        stored = (Deployment.objects.select_for_update().filter(pk=deployment.pk)
                  .values_list("progress", flat=True).first())
        progress = Progress.from_json(stored)
        change(progress)
        deployment.progress = progress.to_json()
        Deployment.objects.filter(pk=deployment.pk).update(progress=deployment.progress)
    return progress
