"""After the switch: the watch window (auto-rollback) and liveness outside rollouts.

Apart from the engine because rolling back creates a deployment (a service), and the
services call the engine: keeping this here keeps the import graph free of circles.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from . import gates
from .engine import runtime_of
from .models import Deployment, DeploymentEvent, Project
from .progress import PREVIOUS_LIVE_KEY, Progress, RolloutConfig
from .runtimes import runtime_for
from .runtimes.base import HealthState
from .services import deployment_auto_rollback
from .timeline import event_record

WATCH_POLL_SECONDS = 1.0  # how often the post-switch watch looks at liveness


def rollout_watch_step(*, deployment_id: int) -> float | None:
    """While the watch window lasts, a live revision failing liveness is rolled back."""
    deployment = Deployment.objects.select_related("project", "source").get(pk=deployment_id)
    project = deployment.project
    if project.live_deployment_id != deployment.pk or deployment.live_at is None:
        return None
    config = RolloutConfig.of(deployment)
    window = config.watch_seconds
    if timezone.now() > deployment.live_at + timedelta(seconds=window):
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.PROBE,
                     message=f"Healthy through the {window:g}s watch window.")
        return None
    runtime = runtime_of(deployment)
    failures = [f for f in runtime.check_liveness(project=project.slug) if f.revision == deployment.revision]
    for failure in failures:
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.PROBE,
                     message=f"Liveness failed: {failure.message}")
    health = runtime.revision_health(project=project.slug, revision=deployment.revision)
    if failures or health.state == HealthState.FAILED:
        reason = failures[0].message if failures else health.message
        deployment_auto_rollback(deployment=deployment, reason=reason)
        return None
    # Metric gates: the error rate and latency after the switch, as during the steps.
    previous = Progress.of(deployment).previous_live
    before = (Deployment.objects.select_related("source").filter(project=project, number=previous).first()
              if previous else None)
    previous_revision = before.revision if before is not None else None
    gate = gates.gate_after_switch(deployment=deployment, runtime=runtime, previous=previous_revision,
                                   now=timezone.now())
    if gate.failed:
        deployment_auto_rollback(deployment=deployment, reason=gate.reason)
        return None
    # Liveness needs several failed probes before it reports anything; looking every
    # second (not every probe period) keeps a whole watch window cheap for the workers.
    poll = max(WATCH_POLL_SECONDS, config.probe_period_seconds)
    return poll if gate.wait is None else min(poll, gate.wait)


def in_watch_window(deployment: Deployment) -> bool:
    window = RolloutConfig.of(deployment).watch_seconds
    return deployment.live_at is not None and timezone.now() < deployment.live_at + timedelta(seconds=window)


def liveness_check(*, project: Project) -> list[str]:
    """Outside rollouts: restart replicas failing liveness and say so on the live deployment."""
    live = project.live_deployment
    if live is None:
        return []
    messages = []
    for failure in runtime_for(runtime=project.runtime, cluster=project.cluster).check_liveness(
            project=project.slug):
        target = live if failure.revision == live.revision else None
        message = f"Liveness failed on revision {failure.revision}: {failure.message}"
        if target is not None:
            event_record(deployment=target, kind=DeploymentEvent.Kind.PROBE, message=message)
        messages.append(message)
    return messages


def projects_for_liveness_check() -> list[Project]:
    """Projects with a live revision, except those whose watch window `rollout_watch` owns."""
    watched = set(
        Deployment.objects.filter(state="succeeded", progress__has_key=PREVIOUS_LIVE_KEY)
        .values_list("project_id", flat=True)
    )
    live = Project.objects.exclude(live_deployment=None).filter(archived_at__isnull=True)
    return [project for project in live.select_related("live_deployment")
            if not (project.pk in watched and in_watch_window(project.live_deployment))]
