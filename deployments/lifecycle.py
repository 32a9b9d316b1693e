"""Which revisions a project needs, and the one rule for retiring the others.

A revision must keep running while it is:
- live;
- the target of an open rollout (queued or in flight);
- warm: it stopped serving less than `keep_warm_seconds` ago (however many switches
  happened since: no cap on how far back this looks).
Kept (`revisions_kept`): the live revision and the `keep_images` revisions that went live
successfully most recently before it.  Their images are never pruned and, once retired,
they stay cold (stopped containers kept, a Deployment at zero) for a quick rollback; the
rest is discarded (`revisions_evict_unkept`) and their images pruned at the next build.

Retiring is decided under the project's lock and marked (`retired_at` on the revision's
first deployment) before the runtime is touched.  A rollout that finds the mark starts the
revision again instead of treating it as warm; starting takes the revision's row lock,
which a retirement in progress holds, so a start never races a removal.  The engine, the
retire task and the reconciler all go through `revision_retire_if_unused`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Max
from django.db.models.functions import Coalesce
from django.utils import timezone

from .errors import TransientError
from .models import ACTIVE_STATES, Deployment, Project, State
from .runtimes import runtime_for
from .runtimes.base import Runtime
from .specs import revision_spec_for
from .transitions import project_lock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevisionPlan:
    live: str | None
    running: frozenset[str]  # must keep running: live, open rollouts' targets, warm
    cold: frozenset[str]  # went live, not running, kept for a rollback (keep_images newest)
    # The revision live before the live one, when the project keeps it warm at 1 replica
    # (`keep_previous_warm`) past the warm window: it is in `running` too.
    previous_warm: str | None = None


def _revision_of(number: int, source_number: int | None) -> str:
    return str(source_number if source_number is not None else number)


# The same rule in SQL: a deployment's revision number.
_REVISION_NUMBER = Coalesce("source__number", "number")


def revision_plan(*, project: Project, now: datetime | None = None, keep_previous: bool = True) -> RevisionPlan:
    """What the project needs now, from the database alone (read it under the project lock
    for a snapshot that no rollout changes meanwhile)."""
    now = now or timezone.now()
    deployments = Deployment.objects.filter(project_id=project.pk)
    live_id = Project.objects.filter(pk=project.pk).values_list("live_deployment_id", flat=True).first()
    running: set[str] = set()
    live = None
    if live_id:
        number, source = deployments.filter(pk=live_id).values_list("number", "source__number").first()
        live = _revision_of(number, source)
        running.add(live)
    for number, source in deployments.filter(state__in=(State.QUEUED, *ACTIVE_STATES)).values_list(
            "number", "source__number"):
        running.add(_revision_of(number, source))
    window_start = now - timedelta(seconds=project.keep_warm_seconds)
    went_live = deployments.filter(live_at__isnull=False)
    recent = list(went_live.filter(live_at__gte=window_start).annotate(revision_number=_REVISION_NUMBER)
                  .values_list("revision_number", flat=True).order_by().distinct())
    if recent:
        # Each of these was live at some moment inside the window, and so was the one
        # that was live just before the earliest of them.
        running |= {str(n) for n in recent}
        before = went_live.filter(live_at__lt=window_start).order_by("-live_at").values_list(
            "number", "source__number").first()
        if before is not None:
            running.add(_revision_of(*before))
    previous_warm = None
    if keep_previous and project.keep_previous_warm and live is not None:
        for number, source in went_live.order_by("-live_at").values_list("number", "source__number")[:50]:
            if _revision_of(number, source) != live:
                previous_warm = _revision_of(number, source)
                running.add(previous_warm)
                break
    cold = frozenset(revisions_kept(project=project, live=live)) - running
    return RevisionPlan(live=live, running=frozenset(running), cold=cold, previous_warm=previous_warm)


def revisions_kept(*, project: Project, live: str | None = None) -> list[str]:
    """The revisions a rollback is promised to (the retention rule, both runtimes): the live
    one, then the `keep_images` revisions that went live successfully most recently before
    it (however often each went live), newest first."""
    if live is None:
        live = revision_live(project=project)
    kept = [live] if live else []
    wanted = project.keep_images + (1 if live else 0)
    # One row per revision, newest last-went-live first, as many as can be kept: every
    # rollback adds a row for a revision that already exists, and reading them all (as this
    # did) grew with the history on every rollback (bench/k8s_rollback.py).
    latest = (Deployment.objects.filter(project_id=project.pk, state=State.SUCCEEDED, live_at__isnull=False)
              .annotate(revision_number=_REVISION_NUMBER).values("revision_number")
              .annotate(last_live=Max("live_at")).order_by("-last_live", "-revision_number"))
    for revision_number in latest.values_list("revision_number", flat=True)[:wanted + 1]:
        if len(kept) >= wanted:
            break
        if str(revision_number) not in kept:
            kept.append(str(revision_number))
    return kept


def revisions_kept_contains(*, project: Project, revision: str, live: str | None = None) -> bool:
    """`live`: the live revision, when the caller has read it already."""
    return str(revision) in revisions_kept(project=project, live=live)


def revision_live(*, project: Project) -> str | None:
    live_id = Project.objects.filter(pk=project.pk).values_list("live_deployment_id", flat=True).first()
    row = Deployment.objects.filter(pk=live_id).values_list("number", "source__number").first() if live_id else None
    return _revision_of(*row) if row else None


def images_kept(*, project: Project) -> frozenset[str]:
    """The commits whose images must stay: kept revisions, running ones and open rollouts."""
    plan = revision_plan(project=project)
    numbers = [int(r) for r in plan.running | plan.cold]
    deployments = Deployment.objects.filter(project_id=project.pk)
    shas = set(deployments.filter(number__in=numbers).values_list("commit_sha", flat=True))
    shas |= set(deployments.filter(state__in=(State.QUEUED, *ACTIVE_STATES)).values_list("commit_sha", flat=True))
    return frozenset(shas)


def revisions_evict_unkept(*, project: Project, runtime: Runtime | None = None) -> list[str]:
    """Discard cold revisions that fell out of the kept set (a newer one went live)."""
    with transaction.atomic():
        project = project_lock(project_id=project.pk)
        plan = revision_plan(project=project)
    runtime = runtime or runtime_of(project)
    return runtime.revisions_evict(project=project.slug, keep=plan.running | plan.cold)


def runtime_of(project: Project) -> Runtime:
    return runtime_for(runtime=project.runtime, cluster=project.cluster)


def _origin(project: Project, revision: str):
    return Deployment.objects.filter(project_id=project.pk, number=int(revision))


@contextlib.contextmanager
def revision_lock(*, project: Project, revision: str):
    """Hold the revision's row (its first deployment) while the runtime starts or removes it."""
    if not connection.features.has_select_for_update:
        # SQLite (the embedded default) takes the whole database's write lock for every
        # transaction (IMMEDIATE): holding one through a drain would stall every writer.
        yield _origin(project, revision).first()
        return
    with transaction.atomic():
        yield _origin(project, revision).select_for_update(no_key=True).first()


def revision_start(*, project: Project, runtime: Runtime, spec) -> None:
    """Start a revision (again): clear its retirement mark first, waiting for a removal in progress."""
    with revision_lock(project=project, revision=spec.revision):
        _origin(project, spec.revision).filter(retired_at__isnull=False).update(retired_at=None)
    runtime.start_revision(spec=spec)


def revision_retired(*, project: Project, revision: str) -> bool:
    """Has a retirement of this revision been decided (it may be draining now)?"""
    return _origin(project, revision).filter(retired_at__isnull=False).exists()


def revision_retire_if_unused(*, project: Project, revision: str, drain_seconds: float,
                              discard: bool = False, now: datetime | None = None,
                              runtime: Runtime | None = None) -> bool:
    """Retire the revision unless the project needs it running (see `revision_plan`).

    discard: it never served (a failed or cancelled rollout), so remove it outright.
    Returns True when it was retired.
    """
    with transaction.atomic():
        project = project_lock(project_id=project.pk)
        plan = revision_plan(project=project, now=now)
        if revision in plan.running:
            if revision != plan.previous_warm or revision in revision_plan(
                    project=project, now=now, keep_previous=False).running:
                return False
            origin = _origin(project, revision).select_related("project", "source").first()
        else:
            origin = None
        keep_cold = revision in plan.cold
        if origin is None:
            _origin(project, revision).filter(retired_at__isnull=True).update(retired_at=timezone.now())
    if origin is not None:  # kept warm past the window (keep_previous_warm): at 1 replica
        with revision_lock(project=project, revision=revision):
            (runtime or runtime_of(project)).start_revision(
                spec=dataclasses.replace(revision_spec_for(origin), replicas=1))
        return False
    runtime = runtime or runtime_of(project)
    never_live = not Deployment.objects.filter(project_id=project.pk, live_at__isnull=False).filter(
        number=int(revision)).exists()
    with revision_lock(project=project, revision=revision) as origin:
        if origin is not None and origin.retired_at is None:
            return False  # started again meanwhile: it is needed after all
        if discard and never_live:
            runtime.discard_revision(project=project.slug, revision=revision)
        elif keep_cold:  # stopped, not removed: a rollback to it is a start, not a create
            runtime.retire_revision(project=project.slug, revision=revision, drain_seconds=drain_seconds)
        else:  # nobody keeps it: drain, then remove (its image goes at the next build)
            runtime.retire_revision(project=project.slug, revision=revision, drain_seconds=drain_seconds)
            runtime.discard_revision(project=project.slug, revision=revision)
    return True


def revisions_tidy(*, project: Project, runtime: Runtime | None = None) -> None:
    """Once a revision went live (committed): what rollouts cancelled by it had started,
    and nobody needs, goes now; so do stopped revisions that fell out of the kept set
    (housekeeping: the next switch retries what fails)."""
    revisions_discard_abandoned(project=project)
    try:
        revisions_evict_unkept(project=project, runtime=runtime)
    except TransientError as exc:
        logger.warning("could not evict unkept revisions of %s: %s", project, exc.message)


def revisions_discard_abandoned(*, project: Project) -> list[str]:
    """Remove revisions that rollouts started but that never went live and nobody needs
    (a rollout cancelled by a rollback): called once the rollback's switch has won."""
    numbers = Deployment.objects.filter(
        project_id=project.pk, state__in=(State.CANCELLED, State.FAILED), live_at__isnull=True,
        retired_at__isnull=True, source__isnull=True).exclude(image="").values_list("number", flat=True)
    done = []
    for number in numbers:
        if revision_retire_if_unused(project=project, revision=str(number), drain_seconds=0, discard=True):
            done.append(str(number))
    return done
