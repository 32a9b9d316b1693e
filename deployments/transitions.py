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
from .timeline import event_save

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


def _phase_event(*, deployment_id: int, to: str, previous: str, reason: str) -> DeploymentEvent:
    """The timeline entry of a transition (unsaved)."""
    if to in FINAL_STATES and to != State.SUCCEEDED:
        kind = DeploymentEvent.Kind.ERROR if to == State.FAILED else DeploymentEvent.Kind.PHASE
        message = f"{State(to).label}{': ' + reason if reason else '.'}"
    else:
        kind, message = DeploymentEvent.Kind.PHASE, f"{State(to).label}."
    return DeploymentEvent(deployment_id=deployment_id, kind=kind, message=message,
                           data={"phase": to, "from": previous})


def deployment_transition(
    *,
    deployment: Deployment,
    to: str,
    expected: Iterable[str] | None = None,
    reason: str = "",
    fields: dict | None = None,
    effect: Effect | None = None,
    publish: Callable[[], None] | None = None,
    locked_project: Project | None = None,
) -> Won | None:
    """Move `deployment` to `to` if its state is one of `expected` (default: any open state).

    Returns Won (with the state it left) when this call made the change, None when
    someone else moved the deployment first.  `deployment` is updated in place when won.
    `publish` runs after commit (enqueue the next step); recorders run before the commit,
    listeners after `publish`.

    `locked_project`: the deployment's project, when the caller already holds its row lock
    in the transaction it is in (the engine's queued step does): the lock is not taken
    again and no savepoint is made, so a failure here rolls the caller back too.
    """
    expected = tuple(expected) if expected is not None else OPEN_STATES
    fields = dict(fields or {})
    now = timezone.now()
    if to in FINAL_STATES:
        fields.setdefault("failure_reason", reason)
        if to != State.FAILED or deployment.finished_at is None:
            fields.setdefault("finished_at", now)
    if locked_project is not None and (locked_project.pk != deployment.project_id
                                       or not transaction.get_connection().in_atomic_block):
        raise ValueError("locked_project must be the deployment's project, locked in the current transaction")
    with transaction.atomic(savepoint=locked_project is None):
        project = locked_project or project_lock(project_id=deployment.project_id)
        if len(expected) == 1 and to != State.FAILED:
            # Compare-and-set in one statement: the UPDATE matches only while the state is
            # still the one expected (PostgreSQL re-checks the condition on the locked row),
            # so the state it left is known without reading it first.
            if not Deployment.objects.filter(pk=deployment.pk, state=expected[0]).update(state=to, **fields):
                return None
            previous = (expected[0], None)
        else:
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
        event_save(_phase_event(deployment_id=deployment.pk, to=to, previous=previous[0], reason=reason))
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


def deployments_supersede_queued(*, locked_project: Project, before_number: int, reason: str,
                                 with_events: Iterable[DeploymentEvent] = ()) -> list[Deployment]:
    """Supersede the project's deployments numbered below `before_number` that have not
    started (rollbacks aside): the transition every new deployment makes, in bulk.

    The caller holds the project's row lock in the current transaction (deployment_create
    does, from numbering).  The same transition as deployment_transition(expected=queued,
    to=superseded), in two statements whatever the count: one UPDATE ... RETURNING is the
    compare-and-set (only rows still queued match), one INSERT writes their timeline
    entries; recorders hear SUPERSEDED for each in the transaction, listeners after commit.  It runs on every webhook
    delivery, where the ORM's SELECT-then-UPDATE per row cost a third of the request's CPU
    (bench/webhook_ingest.py, docs/benchmarks.md).  `with_events`: the caller's own timeline
    entries of this transaction (the new deployment's "Queued"), written by the same INSERT.
    """
    connection = transaction.get_connection()
    if locked_project.pk is None or not connection.in_atomic_block:
        raise ValueError("deployments_supersede_queued needs the project locked in the current transaction")
    field = Deployment._meta.get_field
    quote = connection.ops.quote_name
    names = ("state", "failure_reason", "finished_at", "project", "number", "trigger")
    state, failure_reason, finished_at, project_id, number, trigger = (quote(field(name).column) for name in names)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Deployment._meta.db_table)} SET {state} = %s, {failure_reason} = %s, {finished_at} = %s "
            f"WHERE {project_id} = %s AND {state} = %s AND {number} < %s AND {trigger} <> %s "
            f"RETURNING {quote(Deployment._meta.pk.column)}, {number}, {trigger}",
            [State.SUPERSEDED, reason, connection.ops.adapt_datetimefield_value(now), locked_project.pk,
             State.QUEUED, before_number, Trigger.ROLLBACK],
        )
        rows = cursor.fetchall()
    superseded = [Deployment(pk=pk, project_id=locked_project.pk, number=n, trigger=t, state=State.SUPERSEDED,
                             failure_reason=reason, finished_at=now) for pk, n, t in sorted(rows)]
    events = [*with_events, *(_phase_event(deployment_id=d.pk, to=State.SUPERSEDED, previous=State.QUEUED,
                                           reason=reason) for d in superseded)]
    if events:
        DeploymentEvent.objects.bulk_create(events)
    for deployment in superseded:
        for event in _listener_events(deployment, State.SUPERSEDED, State.QUEUED):
            listeners_announce(event=event, deployment=deployment)
    return superseded
