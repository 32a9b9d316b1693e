"""From a deployment's snapshotted config to the runtime's dataclasses."""

from __future__ import annotations

import dataclasses
import math

from .models import Deployment
from .runtimes.base import BuildSpec, Probe, RevisionSpec


def _probe(config: dict, path_key: str) -> Probe | None:
    path = config.get(path_key) or ""
    if not path:
        return None
    return Probe(
        path=path,
        period_seconds=float(config.get("probe_period_seconds", 1.0)),
        timeout_seconds=float(config.get("probe_timeout_seconds", 1.0)),
        failure_threshold=int(config.get("probe_failure_threshold", 3)),
        success_threshold=int(config.get("probe_success_threshold", 1)),
        initial_delay_seconds=float(config.get("probe_initial_delay_seconds", 0.0)),
    )


def build_spec_for(deployment: Deployment) -> BuildSpec:
    from django.conf import settings

    project = deployment.project
    return BuildSpec(
        project=project.slug,
        sha=deployment.commit_sha,
        clone_url=project.effective_clone_url,
        dockerfile=deployment.config.get("dockerfile", "Dockerfile"),
        registry=settings.SWITCHBACK.get("REGISTRY", ""),
    )


def _startup_probe(config: dict) -> Probe | None:
    """The startup probe may fail until the ready deadline: booting is not failing.

    As Kubernetes recommends for slow starters, failureThreshold x periodSeconds covers
    the longest allowed start (here the project's ready_timeout_seconds).
    """
    probe = _probe(config, "startup_probe_path")
    if probe is None:
        return None
    window = float(config.get("ready_timeout_seconds", 120))
    needed = math.ceil(window / max(probe.period_seconds, 0.1))
    return dataclasses.replace(probe, failure_threshold=max(probe.failure_threshold, needed))


def revision_spec_for(deployment: Deployment) -> RevisionSpec:
    config = deployment.config
    env = {str(k): str(v) for k, v in (config.get("env") or {}).items()}
    return RevisionSpec(
        project=deployment.project.slug,
        revision=deployment.revision,
        image=deployment.image,
        port=int(config.get("port", 8000)),
        replicas=int(config.get("replicas", 1)),
        env=env,
        startup=_startup_probe(config),
        readiness=_probe(config, "readiness_probe_path"),
        liveness=_probe(config, "liveness_probe_path"),
        sha=deployment.commit_sha,
        drain_seconds=float(config.get("drain_seconds", 0.0)),
    )
