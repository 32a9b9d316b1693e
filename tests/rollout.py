"""Driving the rollout engine in the test process, as a worker would."""

from __future__ import annotations

import time

from deployments import engine
from deployments.models import Deployment


def rollout_drive(deployment: Deployment, *, deadline: float = 30.0, max_sleep: float = 0.05) -> Deployment:
    """Run the deployment's steps, sleeping as each asks (at most max_sleep), until the
    engine has nothing more to do or the deadline passes; return it refreshed."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        delay = engine.rollout_step(deployment_id=deployment.pk)
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
