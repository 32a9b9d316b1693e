"""In-process hooks on what happens to a rollout.

A listener is a function taking the deployment; it runs after the transaction that made
the change has committed, so it only ever sees what really happened.  A failing listener
is logged and never undoes the change nor stops the others.  GitHub commit statuses and
notifications are meant to be listeners, registered from their own app's `ready()`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

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


def listener_register(*, event: RolloutEvent, listener: Listener) -> Callable[[], None]:
    """Register a listener; returns a function that unregisters it (tests use it)."""
    _listeners[event].append(listener)
    return lambda: _listeners[event].remove(listener)


def listeners_notify(*, event: RolloutEvent, deployment) -> None:
    for listener in list(_listeners[event]):
        try:
            listener(deployment)
        except Exception:  # noqa: BLE001 - a listener must never break a rollout
            logger.exception("listener %r failed on %s for %s", listener, event, deployment)
