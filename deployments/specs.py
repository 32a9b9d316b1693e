"""From a deployment's snapshotted config to the runtime's dataclasses."""

from __future__ import annotations

import dataclasses
import math

from django.conf import settings

from .models import Deployment
from .progress import RolloutConfig
from .runtimes.base import BuildSpec, GitCredential, Probe, RevisionSpec


def _probe(config: RolloutConfig, path: str) -> Probe | None:
    if not path:
        return None
    return Probe(
        path=path,
        period_seconds=config.probe_period_seconds,
        timeout_seconds=config.probe_timeout_seconds,
        failure_threshold=config.probe_failure_threshold,
        success_threshold=config.probe_success_threshold,
        initial_delay_seconds=config.probe_initial_delay_seconds,
    )


def build_spec_for(deployment: Deployment) -> BuildSpec:
    project = deployment.project
    return BuildSpec(
        project=project.slug,
        sha=deployment.commit_sha,
        clone_url=project.effective_clone_url,
        dockerfile=RolloutConfig.of(deployment).dockerfile,
        registry=settings.SWITCHBACK.get("REGISTRY", ""),
        credential=GitCredential(token=project.git_token, ssh_private_key=project.deploy_key_private)
        if project.git_token or project.deploy_key_private else None,
        branch=project.production_branch or "main",
    )


def _startup_probe(config: RolloutConfig) -> Probe | None:
    """The startup probe may fail until the ready deadline: booting is not failing.

    As Kubernetes recommends for slow starters, failureThreshold x periodSeconds covers
    the longest allowed start (here the project's ready_timeout_seconds).
    """
    probe = _probe(config, config.startup_probe_path)
    if probe is None:
        return None
    needed = math.ceil(config.ready_timeout_seconds / max(probe.period_seconds, 0.1))
    return dataclasses.replace(probe, failure_threshold=max(probe.failure_threshold, needed))


def revision_spec_for(deployment: Deployment) -> RevisionSpec:
    config = RolloutConfig.of(deployment)
    return RevisionSpec(
        project=deployment.project.slug,
        revision=deployment.revision,
        image=deployment.image,
        port=config.port,
        replicas=config.replicas,
        env=dict(config.env),
        startup=_startup_probe(config),
        readiness=_probe(config, config.readiness_probe_path),
        liveness=_probe(config, config.liveness_probe_path),
        sha=deployment.commit_sha,
        # Snapshots from before the limits existed run with the defaults.
        memory_mb=config.memory_mb,
        cpus=config.cpus,
        drain_seconds=config.drain_seconds,
    )
