"""Scheduled promotion: the switch of a deployment at a wall-clock time in a named zone.

The project's strategy may say `{"at": "2026-12-03T14:00", "tz": "Europe/Berlin"}`: each
merge is built, started and warmed at once, and its traffic moves at that time.  The time
is a row (`DeploymentSchedule`) made with the deployment, read by the engine at every
step, so it survives restarts; a person may change it, bring it forward (promote) or
cancel the deployment (abort) until it fires.  `waits.py` is where the engine waits for it.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from .errors import Conflict, ValidationError
from .models import Deployment, DeploymentEvent, DeploymentSchedule, State, Trigger
from .progress import Progress
from .timeline import event_record
from .wallclock import local_exists, local_parse, local_to_utc, wall_time_resolve, zone_get


def schedule_create_for(*, deployment: Deployment, strategy: dict, now: datetime) -> DeploymentSchedule | None:
    """Make the schedule a new deployment inherits from its project's scheduled strategy.

    A time that has already passed (the strategy was written for an earlier merge) does
    not switch this one unannounced: it holds (`at` empty) until someone sets a time or
    promotes it.
    """
    if deployment.trigger == Trigger.ROLLBACK or not strategy or "at" not in strategy:
        return None
    tz = strategy.get("tz", "UTC")
    zone = zone_get(tz)
    local = local_parse(strategy["at"])
    at = local_to_utc(local, zone) if local_exists(local, zone) else None
    if at is not None and at <= now:
        at = None
    schedule = DeploymentSchedule.objects.create(deployment=deployment, local_time=strategy["at"], tz=tz, at=at)
    if at is None:
        message = (f"The project's scheduled time ({strategy['at']} {tz}) has passed: once ready, this "
                   "deployment holds until someone sets a new time or promotes it.")
    else:
        message = f"Scheduled: switches at {strategy['at']} {tz} ({at:%Y-%m-%d %H:%M:%S} UTC)."
    event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE, message=message,
                 data={"schedule": {"local_time": strategy["at"], "tz": tz,
                                    "at": at.isoformat() if at else None}})
    return schedule


def schedule_set(*, deployment: Deployment, at, tz, actor_name: str, now: datetime) -> DeploymentSchedule:
    """Set or change when an open deployment switches.  The caller holds the project's lock.

    Refused: a past or malformed time, a rollback (rollbacks never wait), a deployment that
    finished, one whose schedule fired or whose canary already moved traffic.
    """
    wall = wall_time_resolve(at=at, tz=tz, now=now)
    if deployment.trigger == Trigger.ROLLBACK:
        raise Conflict("A rollback switches at once; it cannot be scheduled.", code="rollback_not_scheduled")
    schedule = DeploymentSchedule.objects.select_for_update().filter(deployment=deployment).first()
    if schedule is not None and schedule.fired_at is not None:
        raise Conflict(f"The schedule of #{deployment.number} fired at {schedule.fired_at:%Y-%m-%d %H:%M:%S} UTC; "
                       "it can no longer change.", code="schedule_fired")
    if deployment.is_final:
        raise Conflict(f"Deployment #{deployment.number} has already finished "
                       f"({deployment.get_state_display().lower()}).", code="already_finished")
    if Progress.of(deployment).applied_step is not None:
        raise Conflict(f"Deployment #{deployment.number} already moved traffic; it cannot be scheduled now.",
                       code="traffic_moved")
    previous = None
    if schedule is None:
        schedule = DeploymentSchedule(deployment=deployment)
    else:
        previous = f"{schedule.local_time} {schedule.tz}"
    schedule.local_time, schedule.tz, schedule.at, schedule.changed_by_name = wall.local, wall.tz, wall.at, actor_name
    schedule.save()
    event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE,
                 message=(f"Schedule changed by {actor_name} from {previous} to " if previous else
                          f"Scheduled by {actor_name}: switches at ")
                 + f"{wall.local} {wall.tz} ({wall.at:%Y-%m-%d %H:%M:%S} UTC)."
                 + (f" {wall.note}" if wall.note else ""),
                 data={"schedule": {"local_time": wall.local, "tz": wall.tz, "at": wall.at.isoformat()}})
    return schedule


def schedule_pending(*, deployment: Deployment) -> DeploymentSchedule | None:
    """The deployment's schedule if it has not fired yet."""
    return DeploymentSchedule.objects.filter(deployment_id=deployment.pk, fired_at__isnull=True).first()


def schedule_bring_forward(*, deployment: Deployment, actor_name: str, now: datetime) -> bool:
    """Promote: the pending schedule fires at the next step.  False when none was pending."""
    updated = DeploymentSchedule.objects.filter(deployment_id=deployment.pk, fired_at__isnull=True).update(
        at=now, changed_by_name=actor_name)
    return bool(updated)


def schedule_fire(*, deployment: Deployment, now: datetime) -> bool:
    """Mark the schedule fired (once: a retried step finds it fired).  True when this call did."""
    with transaction.atomic():
        schedule = (DeploymentSchedule.objects.select_for_update()
                    .filter(deployment_id=deployment.pk, fired_at__isnull=True).first())
        if schedule is None or schedule.at is None or schedule.at > now:
            return False
        schedule.fired_at = now
        schedule.save(update_fields=["fired_at"])
        late = (now - schedule.at).total_seconds()
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE,
                     message=f"Scheduled time {schedule.local_time} {schedule.tz} reached: switching "
                     f"({late:.3f}s after {schedule.at:%H:%M:%S} UTC).",
                     data={"schedule_fired": {"at": schedule.at.isoformat(), "fired_at": now.isoformat(),
                                              "late_seconds": late}})
    return True


def schedule_describe(schedule: DeploymentSchedule | None) -> dict | None:
    """The schedule as the API and the dashboard show it."""
    if schedule is None:
        return None
    return {"local_time": schedule.local_time, "tz": schedule.tz, "at": schedule.at,
            "fired_at": schedule.fired_at, "changed_by": schedule.changed_by_name,
            "held": schedule.at is None and schedule.fired_at is None}


def schedule_input_check(data) -> tuple[str, str]:
    """The request body of a schedule change: {"at": local time, "tz": zone}."""
    if not isinstance(data, dict) or "at" not in data:
        raise ValidationError('Give {"at": "2026-12-03T14:00", "tz": "Europe/Berlin"}.')
    unknown = set(data) - {"at", "tz"}
    if unknown:
        raise ValidationError(f"Unknown keys: {', '.join(sorted(unknown))}.")
    return data["at"], data.get("tz", "UTC")


OPEN_FOR_SCHEDULE = (State.QUEUED, State.BUILDING, State.STARTING, State.VERIFYING, State.SWITCHING)
