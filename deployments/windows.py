"""Deploy windows: when a project's merges may take traffic.

    {"tz": "Europe/Berlin",
     "days": ["mon", "tue", "wed", "thu"],        default: every day
     "from": "09:00", "to": "16:00",             default: the whole day ("to" may be "24:00")
     "freeze": [{"from": "2026-12-20", "to": "2027-01-04", "reason": "year-end freeze"},
                "2026-11-27"]}                    blocked dates, inclusive, in the window's zone

`{}` means always open.  A merge that is ready outside the window is built and warmed,
then waits (`window_state` says until when); a person can override with a reason, and a
rollback never waits.  Pure functions: the engine and the selectors pass the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from .errors import ValidationError
from .wallclock import clock_parse, local_to_utc, zone_get

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_FREEZES = 50
MAX_FREEZE_DAYS = 366
LOOK_AHEAD_DAYS = 400  # past this, "no opening in sight"


def _date(value, *, name: str) -> date:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(f'{name}: give a date as "YYYY-MM-DD".') from exc


def window_validate(value) -> dict:
    """Check a deploy window a project admin wrote; returns it normalised."""
    if value in (None, "", {}):
        return {}
    if not isinstance(value, dict):
        raise ValidationError('deploy_window: give an object such as {"tz": "Europe/Berlin", '
                              '"days": ["mon", "tue"], "from": "09:00", "to": "17:00"}.')
    unknown = set(value) - {"tz", "days", "from", "to", "freeze"}
    if unknown:
        raise ValidationError(f"deploy_window: unknown keys: {', '.join(sorted(unknown))}.")
    tz = value.get("tz", "UTC")
    zone_get(tz)
    out: dict = {"tz": tz}
    days = value.get("days", list(DAYS))
    if not isinstance(days, list) or not days or not all(isinstance(d, str) and d.lower() in DAYS for d in days):
        raise ValidationError(f"deploy_window.days: give a non-empty list of {', '.join(DAYS)}.")
    out["days"] = [d for d in DAYS if d in {x.lower() for x in days}]
    start = clock_parse(value.get("from", "00:00"), name="deploy_window.from")
    end = clock_parse(value.get("to", "24:00"), name="deploy_window.to")
    if start is None:
        raise ValidationError("deploy_window.from: give a time before 24:00.")
    if end is not None and end <= start:
        raise ValidationError("deploy_window: \"to\" must be after \"from\" on the same day "
                              "(a window across midnight: use \"24:00\" and \"00:00\" on the next days).")
    out["from"], out["to"] = start.strftime("%H:%M"), "24:00" if end is None else end.strftime("%H:%M")
    freezes = value.get("freeze", [])
    if not isinstance(freezes, list) or len(freezes) > MAX_FREEZES:
        raise ValidationError(f"deploy_window.freeze: give a list of at most {MAX_FREEZES} dates or ranges.")
    out["freeze"] = []
    for i, item in enumerate(freezes, 1):
        name = f"deploy_window.freeze[{i}]"
        if isinstance(item, str):
            item = {"from": item, "to": item}
        if not isinstance(item, dict) or set(item) - {"from", "to", "reason"}:
            raise ValidationError(f'{name}: give "YYYY-MM-DD" or {{"from": date, "to": date, "reason": text}}.')
        first = _date(item.get("from"), name=f"{name}.from")
        last = _date(item.get("to", item.get("from")), name=f"{name}.to")
        if last < first or (last - first).days >= MAX_FREEZE_DAYS:
            raise ValidationError(f"{name}: \"to\" must be on or after \"from\", at most {MAX_FREEZE_DAYS} days.")
        reason = item.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 200:
            raise ValidationError(f"{name}.reason: at most 200 characters of text.")
        out["freeze"].append({"from": first.isoformat(), "to": last.isoformat(), "reason": reason})
    return out


@dataclass(frozen=True)
class WindowState:
    open: bool
    opens_at: datetime | None = None  # closed: when it opens next (None: not within a year)
    reason: str = ""  # closed: why, for a person


def _frozen(window: dict, day: date) -> dict | None:
    for item in window.get("freeze", []):
        if date.fromisoformat(item["from"]) <= day <= date.fromisoformat(item["to"]):
            return item
    return None


def _describe(window: dict) -> str:
    days = window.get("days", list(DAYS))
    day_text = "every day" if len(days) == 7 else ", ".join(d.capitalize() for d in days)
    hours = "" if (window["from"], window["to"]) == ("00:00", "24:00") else f" {window['from']}-{window['to']}"
    return f"{day_text}{hours} {window['tz']}"


def window_state(*, window: dict, now: datetime) -> WindowState:
    """Is the window open at `now`; if not, why and when it opens (a UTC instant)."""
    if not window:
        return WindowState(open=True)
    zone = zone_get(window["tz"])
    start = time.fromisoformat(window["from"])
    end = None if window["to"] == "24:00" else time.fromisoformat(window["to"])
    today = now.astimezone(zone).date()
    why = ""
    for offset in range(-1, LOOK_AHEAD_DAYS):
        day = today + timedelta(days=offset)
        freeze = _frozen(window, day)
        if freeze is not None or DAYS[day.weekday()] not in window["days"]:
            if offset == 0 and freeze is not None:
                why = (f"deploy freeze {freeze['from']} to {freeze['to']}"
                       + (f" ({freeze['reason']})" if freeze["reason"] else ""))
            continue
        opens = local_to_utc(datetime.combine(day, start), zone)
        closes = local_to_utc(datetime.combine(day + timedelta(days=1), time()) if end is None
                              else datetime.combine(day, end), zone)
        if opens <= now < closes:
            return WindowState(open=True)
        if now < opens:
            return WindowState(open=False, opens_at=opens.astimezone(UTC),
                               reason=why or f"outside the deploy window ({_describe(window)})")
    return WindowState(open=False, reason=why or f"no opening of the deploy window ({_describe(window)}) "
                       "within a year")
