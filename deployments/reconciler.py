"""Converge what the runtimes run with what PostgreSQL says.

Runs periodically (beat) and after a crash: a worker killed mid-rollout leaves, at worst,
containers or servers that no open deployment owns, or traffic weights a rollout had
half-set.  Nothing here trusts memory: everything is derived from the database.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from .errors import SwitchbackError
from .models import ACTIVE_STATES, Deployment, Project, State
from .runtimes import runtime_for
from .runtimes.base import HealthState
from .specs import revision_spec_for

logger = logging.getLogger(__name__)


def revisions_wanted(*, project: Project) -> set[str]:
    """Revisions that must keep running: live, needed by an open rollout, or kept warm."""
    wanted: set[str] = set()
    if project.live_deployment_id:
        wanted.add(project.live_deployment.revision)
    open_ = project.deployments.filter(state__in=(State.QUEUED, *ACTIVE_STATES)).select_related("source")
    wanted |= {d.revision for d in open_}
    keep_warm = timedelta(seconds=project.keep_warm_seconds)
    went_live = list(
        project.deployments.filter(live_at__isnull=False).select_related("source").order_by("-live_at")[:50]
    )
    now = timezone.now()
    for newer, older in zip(went_live, went_live[1:], strict=False):
        # `older` stopped being live when `newer` went live.
        if now - newer.live_at < keep_warm:
            wanted.add(older.revision)
    return wanted


def reconcile_project(*, project: Project) -> list[str]:
    """Bring one project's runtime in line; returns what it did, for logs and tests."""
    project = Project.objects.select_related("live_deployment", "live_deployment__source").get(pk=project.pk)
    runtime = runtime_for(runtime=project.runtime, cluster=project.cluster)
    actions: list[str] = []
    wanted = revisions_wanted(project=project)
    observed = runtime.observe(project=project.slug)
    rolling_out = project.deployments.filter(state__in=ACTIVE_STATES).exists()
    live = project.live_deployment
    if live is not None and not rolling_out:
        running = {o.revision: o for o in observed}
        weights = {o.revision: o.weight for o in observed if o.weight}
        if live.revision not in running or running[live.revision].replicas == 0:
            # The live revision is gone (host restart, worker killed mid-cleanup): start it
            # again from its stored image; traffic follows once it is ready (next pass).
            runtime.start_revision(spec=revision_spec_for(live))
            actions.append(f"started live revision {live.revision} again (it was not running)")
        elif weights != {live.revision: 100}:
            health = runtime.revision_health(project=project.slug, revision=live.revision)
            if health.state == HealthState.READY:
                runtime.set_traffic(project=project.slug, weights={live.revision: 100})
                actions.append(f"traffic: 100% to live revision {live.revision} (was {weights or 'none'})")
    for item in observed:
        if item.revision not in wanted:
            runtime.retire_revision(project=project.slug, revision=item.revision, drain_seconds=0)
            Deployment.objects.filter(project=project, number=int(item.revision),
                                      retired_at__isnull=True).update(retired_at=timezone.now())
            actions.append(f"retired revision {item.revision} (nothing owns it)")
    for line in actions:
        logger.info("reconcile %s: %s", project.slug, line)
    return actions


def reconcile_all() -> dict[str, list[str]]:
    done: dict[str, list[str]] = {}
    for project in Project.objects.all():
        try:
            done[project.slug] = reconcile_project(project=project)
        except SwitchbackError as exc:
            logger.warning("reconcile %s failed: %s", project.slug, exc.message)
    return done
