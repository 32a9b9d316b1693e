"""Converge what the runtimes run with what PostgreSQL says.

Runs periodically (beat) and after a crash: a worker killed mid-rollout leaves, at worst,
containers or servers that no open deployment owns, or traffic weights a rollout had
half-set.  Nothing here trusts memory: everything is derived from the database.

The runtime is observed first; then the project's lock is taken and the database read
once, so the decisions compare against one snapshot that no rollout changes meanwhile
(a rollback finishing during the pass is never undone: its switch waits for the lock, or
the pass sees it).  Traffic is set under that lock, as rollouts do.  Which revisions stay
is `lifecycle`'s rule.
"""

from __future__ import annotations

import logging

from django.db import transaction

from .errors import SwitchbackError
from .lifecycle import revision_plan, revision_retire_if_unused, revision_retired, revision_start, runtime_of
from .models import ACTIVE_STATES, Deployment, Project
from .runtimes.base import HealthState
from .specs import revision_spec_for
from .transitions import project_lock

logger = logging.getLogger(__name__)


def reconcile_project(*, project: Project) -> list[str]:
    """Bring one project's runtime in line; returns what it did, for logs and tests."""
    runtime = runtime_of(project)
    observed = runtime.observe(project=project.slug)
    actions: list[str] = []
    restart = None
    routed = {o.revision for o in observed if o.weight}
    with transaction.atomic():
        project = project_lock(project_id=project.pk)
        plan = revision_plan(project=project)
        rolling_out = project.deployments.filter(state__in=ACTIVE_STATES).exists()
        live = (Deployment.objects.select_related("project", "source").filter(pk=project.live_deployment_id).first()
                if project.live_deployment_id else None)
        running = {o.revision: o for o in observed if o.replicas > 0}
        if live is not None and live.revision not in running:
            # The live revision is gone (host restart, worker killed mid-cleanup), even while
            # another rollout is stuck: start it again from its stored image; traffic follows
            # once it is ready (next pass).
            restart = live
        elif live is not None and not rolling_out:
            weights = {o.revision: o.weight for o in observed if o.weight}
            if weights != {live.revision: 100}:
                health = runtime.revision_health(project=project.slug, revision=live.revision)
                if health.state == HealthState.READY:
                    runtime.set_traffic(project=project.slug, weights={live.revision: 100})
                    routed = {live.revision}
                    actions.append(f"traffic: 100% to live revision {live.revision} (was {weights or 'none'})")
    if restart is not None:
        revision_start(project=project, runtime=runtime, spec=revision_spec_for(restart))
        actions.append(f"started live revision {restart.revision} again (it was not running)")
    for item in observed:
        if item.revision in plan.running:
            continue
        if item.revision in routed:
            continue  # never remove what serves: the rollout that routed it decides
        if item.replicas == 0 and (item.revision in plan.cold
                                   or revision_retired(project=project, revision=item.revision)):
            continue  # already cold: nothing to do (no log line, no API call every pass)
        if revision_retire_if_unused(project=project, revision=item.revision, drain_seconds=0,
                                     discard=item.revision not in plan.cold, runtime=runtime):
            actions.append(f"retired revision {item.revision} (nothing owns it)")
    kept = plan.running | plan.cold
    if any(o.replicas == 0 and o.revision not in kept and o.revision not in routed for o in observed):
        # Stopped revisions nobody keeps any more (the kept set moved on): remove them.
        for revision in runtime.revisions_evict(project=project.slug, keep=kept):
            actions.append(f"removed cold revision {revision} (no longer kept)")
    for line in actions:
        logger.info("reconcile %s: %s", project.slug, line)
    return actions


def reconcile_all() -> dict[str, list[str]]:
    done: dict[str, list[str]] = {}
    for project in Project.objects.filter(archived_at__isnull=True):
        try:
            done[project.slug] = reconcile_project(project=project)
        except SwitchbackError as exc:
            logger.warning("reconcile %s failed: %s", project.slug, exc.message)
    return done
