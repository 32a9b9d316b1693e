"""In-process hooks on what happens to a rollout.

Two kinds, both functions taking the deployment:
- a *recorder* runs inside the transaction that made the change: what it writes (an
  outbox row) commits with the change or not at all, so a process that dies right after the
  commit loses nothing.  It must be quick, only write rows, and write them inside a
  savepoint of its own (`transaction.atomic()`), so that a failed write rolls back only its
  rows, never the change (a savepoint costs two statements: a recorder with nothing to
  write should find that out first, as the reporting one does).
- a *listener* runs after that transaction has committed, so it only ever sees what really
  happened.
A failing hook of either kind is logged and never undoes the change nor stops the others.
GitHub reports and notifications are a recorder, registered from their app's `ready()`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)


class RolloutEvent(enum.StrEnum):
    STARTED = "started"  # left the queue (building, starting, or a warm rollback's switch)
    WENT_LIVE = "went-live"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"  # a rollback went live (WENT_LIVE is sent too)
    SUPERSEDED = "superseded"  # superseded before it started, or cancelled by a rollback
    PROMOTION_WAITING = "promotion-waiting"  # a canary step holds until someone promotes it
    # A scheduled deployment's time came: its traffic starts to move (deployments/waits.py).
    PROMOTION_FIRED = "promotion-fired"


Listener = Callable[[object], None]
_listeners: dict[RolloutEvent, list[Listener]] = {event: [] for event in RolloutEvent}
_recorders: dict[RolloutEvent, list[Listener]] = {event: [] for event in RolloutEvent}


def listener_register(*, event: RolloutEvent, listener: Listener, in_transaction: bool = False) -> Callable[[], None]:
    """Register a listener (after commit) or, with `in_transaction`, a recorder; returns a
    function that unregisters it (tests use it)."""
    hooks = _recorders if in_transaction else _listeners
    hooks[event].append(listener)
    return lambda: hooks[event].remove(listener)


def listeners_announce(*, event: RolloutEvent, deployment) -> None:
    """Called inside the transaction that made the change: recorders run now (each writes
    in its own savepoint); listeners after the commit."""
    for recorder in list(_recorders[event]):
        try:
            recorder(deployment)
        except Exception:  # noqa: BLE001 - a recorder must never break a rollout
            logger.exception("recorder %r failed on %s for %s", recorder, event, deployment)
    if _listeners[event]:
        transaction.on_commit(lambda: listeners_notify(event=event, deployment=deployment))


def listeners_notify(*, event: RolloutEvent, deployment) -> None:
    for listener in list(_listeners[event]):
        try:
            listener(deployment)
        except Exception:  # noqa: BLE001 - a listener must never break a rollout
            logger.exception("listener %r failed on %s for %s", listener, event, deployment)
