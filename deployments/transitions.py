"""The one way a deployment's state changes.

`deployment_transition` compares and sets the state under the project's row lock, records
the phase on the timeline, runs the transition's effect while still holding the lock (so
traffic moves only once the transition that owns it has won, and in the order the
transitions won), lets the recorders write their rows in the same transaction, publishes
the next step once the transaction commits, and then tells the listeners.  Nothing else writes `Deployment.state`.

Why the effect runs under the lock rather than after commit: two transitions that move
traffic (a rollback going live, an abort giving a canary's share back) must apply their
weights in the order they won.  Under the lock they cannot interleave; after commit, the
loser's late call could overwrite the winner's.  If the effect raises, nothing commits and
the step is retried (every runtime call is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .listeners import RolloutEvent, listeners_announce
from .models import FINAL_STATES, Deployment, DeploymentEvent, Project, State, Trigger

OPEN_STATES = tuple(s for s in State if s not in FINAL_STATES)

Effect = Callable[[Project, str], None]  # (the locked project, the state before)


@dataclass(frozen=True)
class Won:
    previous: str  # the state the deployment left


def project_lock(*, project_id: int) -> Project:
    """Take the project's row lock (inside a transaction): one rollout change at a time."""
    return Project.objects.select_for_update().get(pk=project_id)


def _listener_events(deployment: Deployment, new: str, previous: str) -> list[RolloutEvent]:
    events = [RolloutEvent.STARTED] if previous == State.QUEUED and new not in FINAL_STATES else []
    if new == State.SUCCEEDED:
        events.append(RolloutEvent.WENT_LIVE)
        if deployment.trigger == Trigger.ROLLBACK:
            events.append(RolloutEvent.ROLLED_BACK)
        return events
    if new == State.FAILED:
        return events + [RolloutEvent.FAILED]
    if new in (State.SUPERSEDED, State.CANCELLED):
        return events + [RolloutEvent.SUPERSEDED]
    return events


def deployment_transition(
    *,
    deployment: Deployment,
    to: str,
    expected: Iterable[str] | None = None,
    reason: str = "",
    fields: dict | None = None,
    effect: Effect | None = None,
    publish: Callable[[], None] | None = None,
) -> Won | None:
    """Move `deployment` to `to` if its state is one of `expected` (default: any open state).

    Returns Won (with the state it left) when this call made the change, None when
    someone else moved the deployment first.  `deployment` is updated in place when won.
    `publish` runs after commit (enqueue the next step); recorders run before the commit,
    listeners after `publish`.
    """
    expected = tuple(expected) if expected is not None else OPEN_STATES
    fields = dict(fields or {})
    now = timezone.now()
    if to in FINAL_STATES:
        fields.setdefault("failure_reason", reason)
        if to != State.FAILED or deployment.finished_at is None:
            fields.setdefault("finished_at", now)
    with transaction.atomic():
        project = project_lock(project_id=deployment.project_id)
        previous = (Deployment.objects.select_for_update().filter(pk=deployment.pk)
                    .values_list("state", "finished_at").first())
        if previous is None or previous[0] not in expected:
            return None
        if to == State.FAILED and previous[1] is not None:
            fields.pop("finished_at", None)  # failed after going live: it finished back then
        Deployment.objects.filter(pk=deployment.pk).update(state=to, **fields)
        deployment.state = to
        for name, value in fields.items():
            setattr(deployment, name, value)
        if to in FINAL_STATES and to != State.SUCCEEDED:
            kind = DeploymentEvent.Kind.ERROR if to == State.FAILED else DeploymentEvent.Kind.PHASE
            message = f"{State(to).label}{': ' + reason if reason else '.'}"
        else:
            kind, message = DeploymentEvent.Kind.PHASE, f"{State(to).label}."
        DeploymentEvent.objects.create(deployment_id=deployment.pk, kind=kind, message=message,
                                       data={"phase": to, "from": previous[0]})
        if effect is not None:
            effect(project, previous[0])
        if publish is not None:
            transaction.on_commit(publish)
        for event in _listener_events(deployment, to, previous[0]):
            listeners_announce(event=event, deployment=deployment)
    return Won(previous=previous[0])


def deployment_while_in(*, deployment: Deployment, states: Iterable[str], effect: Effect) -> bool:
    """Run `effect` under the project's lock if the deployment is still in one of `states`.

    For what a state owns without leaving it (a canary step's weights): an abort or a
    rollback that won meanwhile is seen, and the effect does not run.
    """
    with transaction.atomic():
        project = project_lock(project_id=deployment.project_id)
        state = Deployment.objects.filter(pk=deployment.pk).values_list("state", flat=True).first()
        if state not in tuple(states):
            return False
        effect(project, state)
    return True
