"""Rollback targets: every earlier successful deployment, once per revision, and what a
rollback to it would take now (warm, cold or unavailable, with the reason).

One selector decides it for the API, the dashboard's buttons and the rollback service:
the retention rule (`lifecycle.revisions_kept`) says which revisions the platform promises
to keep; the runtime says, for those, whether the revision answers now (warm) or can
start from what is kept (cold: its image on the host or in the registry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from . import lifecycle
from .errors import SwitchbackError
from .models import Deployment, Project, State
from .runtimes.base import Availability
from .specs import revision_spec_for

logger = logging.getLogger(__name__)

WARM, COLD, UNAVAILABLE = Availability.WARM.value, Availability.COLD.value, Availability.UNAVAILABLE.value


@dataclass(frozen=True)
class RollbackTarget:
    number: int  # the deployment a rollback names (its revision's first successful one)
    revision: str
    commit_sha: str
    message: str
    image: str
    live_at: datetime
    state: str  # warm | cold | unavailable
    reason: str = ""  # why it is unavailable (or how cold it is)
    remedy: str = ""  # what to do instead, for an unavailable one

    @property
    def available(self) -> bool:
        return self.state != UNAVAILABLE


# What a target shows; the rest of a row (its config snapshot, encrypted) is read only for the
# few kept revisions the runtime is asked about.
_FIELDS = ("id", "project_id", "number", "source_id", "source__number", "commit_sha", "message", "image", "live_at")


def _candidates(project: Project, *, revisions: set[str] | None = None) -> list[Deployment]:
    """One deployment per revision that went live successfully, newest use first: the
    revision's origin when it succeeded itself, else its latest successful rollback.
    revisions: only these (a page of the history), else all of them."""
    rows = (Deployment.objects.filter(project_id=project.pk, state=State.SUCCEEDED, live_at__isnull=False)
            .select_related("source").only(*_FIELDS).order_by("-live_at"))
    if revisions is not None:
        numbers = [int(r) for r in revisions]
        rows = rows.filter(Q(number__in=numbers, source__isnull=True) | Q(source__number__in=numbers))
    by_revision: dict[str, Deployment] = {}
    for deployment in rows:
        deployment.project = project  # the caller's: not one load (and decryption) per row
        current = by_revision.get(deployment.revision)
        if current is None or (current.source_id is not None and deployment.source_id is None):
            by_revision[deployment.revision] = deployment
    return list(by_revision.values())


def _specs(project: Project, deployments: list[Deployment]) -> list:
    """Revision specs of the kept targets, from their full rows (config snapshots included)."""
    full = {d.pk: d for d in Deployment.objects.filter(pk__in=[d.pk for d in deployments]).select_related("source")}
    for d in full.values():
        d.project = project
    return [revision_spec_for(full[d.pk]) for d in deployments]


def rollback_targets_list(*, project: Project, ask_runtime: bool = True,
                          revisions: set[str] | None = None) -> list[RollbackTarget]:
    """Every earlier successful revision (the live one excluded), the most recently live first.

    ask_runtime=False answers from the database alone: kept revisions are then "cold"
    (at least), the others unavailable.  revisions: only those (the dashboard asks for the
    page it shows; the cost then does not grow with the history).
    """
    live = lifecycle.revision_live(project=project)
    kept = lifecycle.revisions_kept(project=project, live=live)
    candidates = [d for d in _candidates(project, revisions=revisions) if d.revision != live]
    in_kept = [d for d in candidates if d.revision in kept]
    answers = {}
    if ask_runtime and in_kept:
        try:
            runtime = lifecycle.runtime_of(project)
            answers = runtime.revisions_availability(project=project.slug,
                                                     specs=_specs(project, in_kept))
        except SwitchbackError as exc:
            logger.warning("could not ask the runtime about %s's rollback targets: %s", project.slug, exc.message)
            answers = {d.revision: None for d in in_kept}
    targets = []
    for d in candidates:
        remedy = f"Redeploy #{d.number} rebuilds commit {d.short_sha}."
        if d.revision not in kept:
            state, reason = UNAVAILABLE, (
                f"older than the {project.keep_images} revision(s) this project keeps (keep_images): "
                "its image has been pruned")
        elif d.revision in answers and answers[d.revision] is None:
            state, reason = UNAVAILABLE, "the runtime did not answer; try again in a moment"
        elif d.revision in answers:
            state, reason = answers[d.revision].state.value, answers[d.revision].reason
        else:
            state, reason = COLD, ""
        targets.append(RollbackTarget(
            number=d.number, revision=d.revision, commit_sha=d.commit_sha, message=d.message, image=d.image,
            live_at=d.live_at, state=state, reason=reason, remedy=remedy if state == UNAVAILABLE else ""))
    return targets
