"""On start, the platform adopts what already runs instead of starting it again.

The data plane (HAProxy, the app containers) outlives the control plane.  When `up` starts,
revisions are found by their labels, HAProxy's servers and weights are read back, and both
are checked against the database; only where they disagree does the reconciler act.
"""

from __future__ import annotations

import logging

from .errors import SwitchbackError
from .models import Project
from .reconciler import reconcile_project
from .runtimes import runtime_for

logger = logging.getLogger(__name__)


def platform_adopt() -> list[str]:
    """Adopt every project's running revisions; returns one line per project (for `up`)."""
    lines: list[str] = []
    adopted_runtimes: set[int] = set()
    for project in (Project.objects.filter(archived_at__isnull=True)
                    .select_related("live_deployment", "live_deployment__source").order_by("slug")):
        try:
            runtime = runtime_for(runtime=project.runtime, cluster=project.cluster)
            if id(runtime) not in adopted_runtimes:
                adopted_runtimes.add(id(runtime))
                lines += [f"router: {fix}" for fix in runtime.adopt()]
            lines.append(_project_adopt(project=project, runtime=runtime))
        except SwitchbackError as exc:
            lines.append(f"{project.slug}: could not adopt ({exc}); the reconciler retries")
    for line in lines:
        logger.info("adopt %s", line)
    return lines


def _project_adopt(*, project: Project, runtime) -> str:
    live = project.live_deployment
    observed = {o.revision: o for o in runtime.observe(project=project.slug)}
    weights = {rev: o.weight for rev, o in observed.items() if o.weight}
    if live is None:
        found = f"{len(observed)} revision(s) running" if observed else "nothing running"
        return f"{project.slug}: no live revision; {found}"
    running = observed.get(live.revision)
    if running is not None and running.replicas > 0 and weights == {live.revision: 100}:
        return (f"{project.slug}: adopted revision {live.revision} "
                f"({running.replicas} replica(s) running, 100% of traffic)")
    actions = reconcile_project(project=project)
    return f"{project.slug}: revision {live.revision} did not run as recorded; " + (
        "; ".join(actions) or "a rollout in flight owns it")
