"""Promotion strategies: data, checked here, and one object that interprets them.

    {}                                               switch all at once when ready
    {"steps": [{"weight": 10, "wait": 60},
               {"weight": 50, "wait": 60}]}          canary 10% -> 50% -> 100%
    {"steps": [{"weight": 10, "wait": null}]}        hold 10% until promoted
    {"at": "2026-12-03T14:00", "tz": "Europe/Berlin"} scheduled: warm now, switch then
                                                     (with "steps": the canary starts then)
    {"tz": "Europe/Berlin", "steps": [{"weight": 10, "until": "2026-12-03T14:00"}]}
                                                     10% until that wall time, then on

`Strategy` answers "what next, until when, is it holding" for the engine, the selectors
(the live panel) and the promote service alike.  Scheduled steps and metric gates plug in
as new kinds of step here: the engine only ever asks `next_step`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import ValidationError
from .progress import Progress, RolloutConfig, StepConfig
from .wallclock import local_exists, local_parse, wall_time_resolve, zone_get

MAX_STEPS = 20
MAX_WAIT_SECONDS = 7 * 86400


def strategy_validate(value) -> dict:
    """Check a strategy a project admin wrote; raises the domain's ValidationError."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError('Give an object such as {"steps": [{"weight": 10, "wait": 60}]}.')
    unknown = set(value) - {"steps", "at", "tz"}
    if unknown:
        raise ValidationError(f"Unknown strategy keys: {', '.join(sorted(unknown))}.")
    steps = value.get("steps", [])
    if not isinstance(steps, list) or len(steps) > MAX_STEPS:
        raise ValidationError(f"steps: give a list of at most {MAX_STEPS} steps.")
    previous = 0
    zone = zone_get(value.get("tz", "UTC")) if any(isinstance(s, dict) and "until" in s for s in steps) else None
    for i, step in enumerate(steps, 1):
        if not isinstance(step, dict) or set(step) - {"weight", "wait", "until"}:
            raise ValidationError(f'step {i}: give {{"weight": 1-99, "wait": seconds or null}} '
                                  'or {"weight": 1-99, "until": local time}.')
        if "until" in step:
            if "wait" in step:
                raise ValidationError(f'step {i}: give "wait" or "until", not both.')
            local = local_parse(step["until"])
            if not local_exists(local, zone):
                raise ValidationError(f"step {i}: {step['until']} does not exist in {zone.key}: the clocks skip "
                                      "it for daylight saving time.")
        weight = step.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 99:
            raise ValidationError(f"step {i}: weight must be an integer from 1 to 99.")
        if weight <= previous:
            raise ValidationError(f"step {i}: weights must increase ({weight} after {previous}).")
        previous = weight
        wait = step.get("wait", 0)
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, int | float)
                                 or not 0 <= wait <= MAX_WAIT_SECONDS):
            raise ValidationError(f"step {i}: wait must be seconds (0 to {MAX_WAIT_SECONDS}) or null to hold.")
    out = {"steps": steps} if steps else {}
    if "at" in value:
        out.update(_schedule_shape(value))
    elif "tz" in value:
        if not any("until" in s for s in steps):
            raise ValidationError('at: a scheduled strategy needs "at" (a local time) with "tz".')
        out["tz"] = value["tz"]
    return out


def _schedule_shape(value: dict) -> dict:
    """The scheduled strategy's time, checked for shape here (a stored strategy whose time
    has passed stays valid: it holds the next merges); `strategy_schedule_refuse_past`
    refuses a past time when someone writes it."""
    if "at" not in value:
        raise ValidationError('at: a scheduled strategy needs "at" (a local time) with "tz".')
    tz = value.get("tz", "UTC")
    zone = zone_get(tz)
    local = local_parse(value["at"])
    if not local_exists(local, zone):
        raise ValidationError(f"at: {value['at']} does not exist in {tz}: the clocks skip it for daylight "
                              "saving time. Pick a time outside the jump.")
    return {"at": value["at"], "tz": tz}


def strategy_schedule_refuse_past(value: dict, *, now: datetime) -> None:
    """A scheduled strategy written now must name a future time (raises ValidationError)."""
    if value and "at" in value:
        wall_time_resolve(at=value["at"], tz=value.get("tz", "UTC"), now=now)
    for i, step in enumerate((value or {}).get("steps", []), 1):
        if "until" in step:
            wall_time_resolve(at=step["until"], tz=value.get("tz", "UTC"), now=now, field=f"step {i} until")


class Action(enum.StrEnum):
    APPLY = "apply"  # set this step's weights
    WAIT = "wait"  # the step's wait runs: come back in `seconds`
    HOLD = "hold"  # held until someone promotes or aborts
    GO_LIVE = "go-live"  # all steps done: switch all traffic


@dataclass(frozen=True)
class Next:
    action: Action
    index: int = 0  # the step concerned (0-based)
    seconds: float | None = None  # WAIT: how long


@dataclass(frozen=True)
class Strategy:
    steps: tuple[StepConfig, ...] = ()

    @classmethod
    def of(cls, config: RolloutConfig) -> Strategy:
        return cls(steps=config.steps)

    def shares_traffic(self, *, is_rollback: bool, has_other_live: bool) -> bool:
        """A canary needs steps and another revision to share with; a rollback reroutes at once."""
        return bool(self.steps) and has_other_live and not is_rollback

    def next_step(self, progress: Progress, now: datetime) -> Next:
        if progress.promoted_full:  # "promote all": every remaining step is skipped
            return Next(Action.GO_LIVE, len(self.steps))
        index = progress.step
        if progress.applied_step == index:
            until = progress.step_until
            if progress.promoted_step == index or (until is not None and now >= until):
                index += 1
            elif until is not None:
                return Next(Action.WAIT, index, (until - now).total_seconds())
            else:
                return Next(Action.HOLD, index)
        if index >= len(self.steps):
            return Next(Action.GO_LIVE, index)
        return Next(Action.APPLY, index)

    def apply(self, progress: Progress, index: int, now: datetime, weights: dict[str, int]) -> None:
        """Record that step `index` is applied with these weights, and until when it waits."""
        step = self.steps[index]
        progress.step, progress.applied_step, progress.weights = index, index, dict(weights)
        if step.until is not None:  # a wall time: until then (already passed: go on at once)
            progress.step_until = max(step.until, now)
        else:
            progress.step_until = None if step.wait is None else now + timedelta(seconds=step.wait)

    def waiting_step(self, *, switching: bool, progress: Progress) -> int | None:
        """The step (0-based) the rollout is waiting at or holding, else None."""
        if switching and progress.pin_held:  # held by the project's pin: promote releases it
            return progress.step
        if not switching or progress.applied_step is None:
            return None
        if progress.applied_step != progress.step or progress.promoted_step == progress.step:
            return None
        return progress.step

    def holding(self, *, switching: bool, progress: Progress) -> bool:
        if switching and progress.pin_held:
            return True
        return self.waiting_step(switching=switching, progress=progress) is not None and progress.step_until is None
