"""A rollout's state as a terminal (or any API client) follows it: phases, the traffic
split, the canary steps, whether it is held, and the timeline's newest events.

`switchback deploy --watch` polls it with `after` (the last event id it has shown), so
each poll returns only what is new: three queries whatever the length of the timeline.
"""

from __future__ import annotations

from .models import Deployment, DeploymentEvent, State
from .progress import Progress, RolloutConfig
from .selectors import deployment_phases
from .strategies import Strategy

EVENTS_MAX = 500  # events per answer; the client asks again with the last id it got


def rollout_state_get(*, deployment: Deployment, after: int = 0, limit: int = EVENTS_MAX) -> dict:
    phase_events = list(deployment.events.filter(kind=DeploymentEvent.Kind.PHASE).order_by("id"))
    events = list(deployment.events.filter(id__gt=after).order_by("id")[:max(1, min(limit, EVENTS_MAX))])
    progress = Progress.of(deployment)
    strategy = Strategy.of(RolloutConfig.of(deployment))
    switching = deployment.state == State.SWITCHING
    weights = {revision: int(weight) for revision, weight in (progress.weights or {}).items() if weight}
    if deployment.state == State.SUCCEEDED and not weights:
        weights = {deployment.revision: 100}
    return {
        "number": deployment.number,
        "state": deployment.state,
        "failure_reason": deployment.failure_reason,
        "revision": deployment.revision,
        "is_live": deployment.project.live_deployment_id == deployment.pk,
        "is_final": deployment.is_final,
        "phases": deployment_phases(deployment=deployment, phase_events=phase_events),
        "weights": weights,
        "steps": [{"weight": step.weight, "wait": step.wait} for step in strategy.steps],
        "step": progress.step,
        "waiting_step": strategy.waiting_step(switching=switching, progress=progress),
        "holding": strategy.holding(switching=switching, progress=progress),
        "step_until": progress.step_until,
        "events": events,
        "last_event_id": events[-1].pk if events else after,
    }
