"""What a ready rollout waits for before it moves any traffic, and why it waits.

Before the first weight moves, a rollout that is ready and warm waits for:
1. its scheduled time (`schedules`), then
2. the project's deploy window (`windows`), unless a person overrode it with a reason.
Rollbacks wait for neither.  Once traffic has moved (a canary step applied) neither is
asked again: a window that closes mid-canary does not strand a split.

The engine asks `rollout_wait_before_traffic`; the dashboard, the API and the promote
service ask `deployment_waiting_for`, so all of them say the same thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from .listeners import RolloutEvent, listeners_announce
from .models import Deployment, DeploymentEvent, Project, State, Trigger
from .progress import Progress, RolloutConfig
from .schedules import schedule_fire, schedule_pending
from .strategies import Action, Next, Strategy
from .timeline import event_record, progress_change
from .wallclock import zone_get
from .windows import window_state

# A long wait is slept in slices: each wake-up re-reads the schedule and the window from
# the database (a changed time is also handed out at once with a fresh token).  The last
# slice ends exactly at the time, so the slicing costs no accuracy.
SCHEDULE_SLICE_SECONDS = 300.0
WINDOW_SLICE_SECONDS = 60.0
# A broker's countdown lands tens to hundreds of milliseconds late on a loaded worker: the
# last slice wakes this much early and the step sleeps out the rest itself, so the switch
# starts on the time (bench/scheduled_promotion.py measures it).
SCHEDULE_WAKE_EARLY_SECONDS = 0.25
sleep = time.sleep  # tests put their controllable clock's advance here


def _fmt(instant: datetime, tz: str | None = None) -> str:
    text = f"{instant.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if tz and tz != "UTC":
        text += f" ({instant.astimezone(zone_get(tz)):%a %Y-%m-%d %H:%M} {tz})"
    return text


def _schedule_wait(deployment: Deployment, now: datetime) -> Next | None:
    schedule = schedule_pending(deployment=deployment)
    if schedule is None:
        return None
    if schedule.at is None:
        return Next(Action.HOLD)
    remaining = (schedule.at - now).total_seconds()
    if remaining > SCHEDULE_WAKE_EARLY_SECONDS:
        return Next(Action.WAIT, seconds=min(SCHEDULE_SLICE_SECONDS, remaining - SCHEDULE_WAKE_EARLY_SECONDS))
    if remaining > 0:
        sleep(remaining)
        now = timezone.now()
    with transaction.atomic():  # the event's report rows commit with the firing
        fired = schedule_fire(deployment=deployment, now=now)
        if fired:
            listeners_announce(event=RolloutEvent.PROMOTION_FIRED, deployment=deployment)
    if not fired and schedule_pending(deployment=deployment) is not None:  # changed meanwhile: look again
        return Next(Action.WAIT, seconds=0.01)
    return None


def _window_wait(deployment: Deployment, now: datetime) -> Next | None:
    progress = Progress.of(deployment)
    if progress.window_override:
        return None
    window = Project.objects.filter(pk=deployment.project_id).values_list("deploy_window", flat=True).first()
    state = window_state(window=window or {}, now=now)
    if state.open:
        if progress.window_waiting:
            def leave(p: Progress) -> None:
                p.window_waiting, p.window_until, p.window_reason = False, None, ""

            progress_change(deployment=deployment, change=leave)
            event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE,
                         message="The deploy window is open: switching.")
        return None
    if not progress.window_waiting or progress.window_until != state.opens_at \
            or progress.window_reason != state.reason:
        def wait(p: Progress) -> None:
            p.window_waiting, p.window_until, p.window_reason = True, state.opens_at, state.reason

        progress_change(deployment=deployment, change=wait)
        goes = (f"it switches when the window opens, at {_fmt(state.opens_at, window.get('tz'))}"
                if state.opens_at else "no opening is in sight")
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE,
                     message=f"Ready and warm, waiting: {state.reason}; {goes}, unless a newer deployment "
                     "supersedes it. A deployer may override with a reason.",
                     data={"window": {"until": state.opens_at.isoformat() if state.opens_at else None,
                                      "reason": state.reason}})
    if state.opens_at is None:
        return Next(Action.WAIT, seconds=WINDOW_SLICE_SECONDS)  # a freeze may be lifted: look again
    return Next(Action.WAIT, seconds=min(WINDOW_SLICE_SECONDS, (state.opens_at - now).total_seconds()))


def rollout_wait_before_traffic(*, deployment: Deployment, now: datetime) -> Next | None:
    """None: go on (move traffic); else WAIT (seconds) or HOLD."""
    if deployment.trigger == Trigger.ROLLBACK or Progress.of(deployment).applied_step is not None:
        return None
    return _schedule_wait(deployment, now) or _window_wait(deployment, now)


@dataclass(frozen=True)
class Waiting:
    kind: str  # "schedule", "window", "pin", "step"
    until: datetime | None  # when it goes by itself (None: it waits for a person)
    message: str


def deployment_waiting_for(*, deployment: Deployment, now: datetime) -> Waiting | None:
    """Why a rollout is waiting, and until when; None when it is not waiting."""
    if deployment.is_final:
        return None
    progress = Progress.of(deployment)
    switching = deployment.state == State.SWITCHING
    if switching and progress.pin_held:
        return Waiting("pin", None, "Ready and warm, held: the project is pinned. Unpin it or promote this "
                       "deployment.")
    schedule = None if deployment.trigger == Trigger.ROLLBACK else schedule_pending(deployment=deployment)
    if schedule is not None and progress.applied_step is None:
        if schedule.at is None:
            return Waiting("schedule", None, f"The project's scheduled time ({schedule.local_time} {schedule.tz}) "
                           "had passed: held until someone sets a new time or promotes it.")
        ready = "Ready and warm" if switching else "Once ready and warm"
        return Waiting("schedule", schedule.at,
                       f"{ready}, it switches at the scheduled time: {schedule.local_time} {schedule.tz} "
                       f"({_fmt(schedule.at)}).")
    if switching and progress.window_waiting and not progress.window_override:
        goes = f"goes at {_fmt(progress.window_until)}" if progress.window_until else "no opening in sight"
        return Waiting("window", progress.window_until, f"Ready and warm, waiting: {progress.window_reason}; {goes}.")
    strategy = Strategy.of(RolloutConfig.of(deployment))
    step = strategy.waiting_step(switching=switching, progress=progress)
    if step is not None:
        if progress.step_until is None:
            return Waiting("step", None, f"Held at step {step + 1}/{len(strategy.steps)} until promoted.")
        return Waiting("step", progress.step_until,
                       f"At step {step + 1}/{len(strategy.steps)}; the next step at {_fmt(progress.step_until)}.")
    return None
