"""Wall-clock times in named time zones (IANA, through the standard library's zoneinfo).

A person writes "2026-12-03T14:00 in Europe/Berlin"; the platform keeps the UTC instant
that wall time names on that date, so a schedule set before a DST change fires at the
wall time the person meant, not 24 hours after something.  Pure functions: no database.

DST edges (https://docs.python.org/3/library/zoneinfo.html#using-zoneinfo):
- a wall time that does not exist (clocks jump from 02:00 to 03:00) is refused;
- a wall time that happens twice (clocks go back) means its first occurrence (fold=0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ValidationError

# "2026-12-03T14:00" or with seconds; no offset: the zone says it.
LOCAL_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")
TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")
CLOCK_RE = re.compile(r"^(\d{2}):(\d{2})$")


def zone_get(name) -> ZoneInfo:
    """The named IANA zone; the name is attacker-controlled: checked before it names a file."""
    if not isinstance(name, str) or not name or len(name) > 64 or not TZ_RE.match(name):
        raise ValidationError('tz: give an IANA time zone name such as "Europe/Berlin" or "UTC".')
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError(f'tz: unknown time zone "{name}" (an IANA name such as "Europe/Berlin").') from exc


def local_parse(value) -> datetime:
    """A naive local date and time from "YYYY-MM-DDTHH:MM[:SS]"."""
    if not isinstance(value, str) or not LOCAL_TIME_RE.match(value):
        raise ValidationError('at: give a local date and time such as "2026-12-03T14:00" '
                              '(no offset: "tz" names the zone).')
    try:
        return datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError as exc:
        raise ValidationError(f"at: {value} is not a valid date and time.") from exc


def clock_parse(value, *, name: str) -> time | None:
    """"HH:MM" (00:00 to 24:00); 24:00 is returned as None (the end of the day)."""
    match = CLOCK_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(f'{name}: give a time of day as "HH:MM", such as "09:00".')
    hours, minutes = int(match[1]), int(match[2])
    if (hours, minutes) == (24, 0):
        return None
    if hours > 23 or minutes > 59:
        raise ValidationError(f"{name}: {value} is not a time of day (00:00 to 24:00).")
    return time(hours, minutes)


def local_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time (first occurrence when it happens twice);
    a wall time skipped by a DST change moves forward by the gap."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def local_exists(local: datetime, zone: ZoneInfo) -> bool:
    back = local.replace(tzinfo=zone, fold=0).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return back == local


def local_ambiguous(local: datetime, zone: ZoneInfo) -> bool:
    return local.replace(tzinfo=zone, fold=0).utcoffset() != local.replace(tzinfo=zone, fold=1).utcoffset()


@dataclass(frozen=True)
class WallTime:
    local: str  # as the person wrote it, normalised to "YYYY-MM-DDTHH:MM[:SS]"
    tz: str
    at: datetime  # the UTC instant
    note: str = ""  # said to the person (an ambiguous time's choice)


MAX_AHEAD = timedelta(days=366)


def wall_time_resolve(*, at, tz, now: datetime, field: str = "at") -> WallTime:
    """Check a wall time written by a project admin and resolve it to UTC.

    Refused: a malformed time or zone, a wall time that does not exist in the zone (DST
    gap), a time not after `now`, a time more than a year ahead.
    """
    zone = zone_get(tz)
    local = local_parse(at)
    if not local_exists(local, zone):
        raise ValidationError(f"{field}: {at} does not exist in {tz}: the clocks skip it for daylight "
                              "saving time. Pick a time outside the jump.")
    instant = local_to_utc(local, zone)
    note = ""
    if local_ambiguous(local, zone):
        offset = local.replace(tzinfo=zone, fold=0).strftime("%z")
        note = (f"{at} happens twice in {tz} (the clocks go back); it means the first one "
                f"(UTC offset {offset[:3]}:{offset[3:]}).")
    if instant <= now:
        raise ValidationError(f"{field}: {at} {tz} ({instant:%Y-%m-%d %H:%M:%S} UTC) is in the past; "
                              "give a time in the future.")
    if instant - now > MAX_AHEAD:
        raise ValidationError(f"{field}: {at} {tz} is more than a year ahead.")
    return WallTime(local=local.isoformat(timespec="minutes" if local.second == 0 else "seconds"),
                    tz=zone.key, at=instant, note=note)
