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


def _candidates(project: Project) -> list[Deployment]:
    """One deployment per revision that went live successfully, newest use first: the
    revision's origin when it succeeded itself, else its latest successful rollback."""
    rows = (Deployment.objects.filter(project=project, state=State.SUCCEEDED, live_at__isnull=False)
            .select_related("project", "source").order_by("-live_at"))
    by_revision: dict[str, Deployment] = {}
    for deployment in rows:
        current = by_revision.get(deployment.revision)
        if current is None or (current.source_id is not None and deployment.source_id is None):
            by_revision[deployment.revision] = deployment
    return list(by_revision.values())


def rollback_targets_list(*, project: Project, ask_runtime: bool = True) -> list[RollbackTarget]:
    """Every earlier successful revision (the live one excluded), the most recently live first.

    ask_runtime=False answers from the database alone: kept revisions are then "cold"
    (at least), the others unavailable.
    """
    live = lifecycle.revision_live(project=project)
    kept = lifecycle.revisions_kept(project=project, live=live)
    candidates = [d for d in _candidates(project) if d.revision != live]
    in_kept = [d for d in candidates if d.revision in kept]
    answers = {}
    if ask_runtime and in_kept:
        try:
            runtime = lifecycle.runtime_of(project)
            answers = runtime.revisions_availability(project=project.slug,
                                                     specs=[revision_spec_for(d) for d in in_kept])
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
