"""Driving the rollout engine in the test process, as a worker would."""

from __future__ import annotations

import time

from deployments import engine
from deployments.models import Deployment


def rollout_drive(deployment: Deployment, *, deadline: float = 30.0, max_sleep: float = 0.05) -> Deployment:
    """Run the deployment's steps, sleeping as each asks (at most max_sleep), until the
    engine has nothing more to do or the deadline passes; return it refreshed."""
    from deployments.errors import TransientError

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            delay = engine.rollout_step(deployment_id=deployment.pk)
        except TransientError:
            delay = max_sleep  # the task would retry it, counted against the phase's deadline
        if delay is None:
            break
        time.sleep(min(delay, max_sleep))
    deployment.refresh_from_db()
    return deployment


def rollout_drive_until_wait(deployment: Deployment, *, max_steps: int = 50) -> Deployment:
    """Run the steps that are due now; stop when the engine is done or asks to wait."""
    for _ in range(max_steps):
        delay = engine.rollout_step(deployment_id=deployment.pk)
        if delay is None or delay > 0:
            break
    deployment.refresh_from_db()
    return deployment


def retire_after_warm_window(*, project, revision: str, drain_seconds: float = 0) -> bool:
    """What the retire task does once the keep-warm window has passed (the clock moved on
    by keep_warm_seconds instead of the test waiting for it)."""
    from datetime import timedelta

    from django.utils import timezone

    from deployments import lifecycle
    from deployments.models import Project

    project = Project.objects.get(pk=project.pk)
    later = timezone.now() + timedelta(seconds=project.keep_warm_seconds + 1)
    return lifecycle.revision_retire_if_unused(project=project, revision=revision, drain_seconds=drain_seconds,
                                               now=later)
