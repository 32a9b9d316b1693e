"""A rollout's progress and its config snapshot, typed.

Both are stored as JSON on the deployment (`Deployment.progress`, `Deployment.config`);
this module is the only place that knows their keys.  Everything else reads and writes
the dataclasses below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .envvars import config_env
from .wallclock import local_parse, local_to_utc, zone_get

# The key the post-switch watch leaves behind (read in a query by the liveness sweep).
PREVIOUS_LIVE_KEY = "previous_live"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _wall(local: Any, tz: str) -> datetime | None:
    """A step's "until" wall time as an instant (validated when the strategy was written)."""
    if not local:
        return None
    return local_to_utc(local_parse(local), zone_get(tz))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class Progress:
    """The engine's bookkeeping for one rollout."""

    ready_deadline: datetime | None = None  # verifying: not ready by then -> failed
    step: int = 0  # the canary step (0-based) the rollout is at
    applied_step: int | None = None  # the step whose weights are set
    step_until: datetime | None = None  # that step's wait ends; None with applied_step: held
    promoted_step: int | None = None  # someone ended that step's wait
    weights: dict[str, int] = field(default_factory=dict)  # the split this rollout set
    previous_live: int | None = None  # number of the deployment live before this one
    pin_held: bool = False  # ready, but the project is pinned: waits for unpin or promote
    pin_released: bool = False  # promoted past the pin: switches although the project is pinned
    promoted_full: bool = False  # promoted with "full": skip every remaining step, go live
    # Ready outside the project's deploy window: waits until `window_until` (None: no
    # opening in sight), because of `window_reason`; `window_override` is the reason a
    # person gave to deploy now anyway.
    window_waiting: bool = False
    window_until: datetime | None = None
    window_reason: str = ""
    window_override: str = ""
    # Transient trouble in the current phase: since when, how often, the last reason.
    transient_phase: str = ""
    transient_since: datetime | None = None
    transient_count: int = 0
    transient_reason: str = ""
    gate: dict = field(default_factory=dict)  # the metric gates' tally (deployments.gates owns its keys)

    @classmethod
    def from_json(cls, data: dict | None) -> Progress:
        data = data or {}
        return cls(
            ready_deadline=_time(data.get("ready_deadline")),
            step=int(data.get("step") or 0),
            applied_step=_int(data.get("applied_step")),
            step_until=_time(data.get("step_until")),
            promoted_step=_int(data.get("promoted_step")),
            weights={str(k): int(v) for k, v in (data.get("weights") or {}).items()},
            previous_live=_int(data.get(PREVIOUS_LIVE_KEY)),
            pin_held=bool(data.get("pin_held")),
            pin_released=bool(data.get("pin_released")),
            promoted_full=bool(data.get("promoted_full")),
            window_waiting=bool(data.get("window_waiting")),
            window_until=_time(data.get("window_until")),
            window_reason=str(data.get("window_reason") or ""),
            window_override=str(data.get("window_override") or ""),
            transient_phase=str(data.get("transient_phase") or ""),
            transient_since=_time(data.get("transient_since")),
            transient_count=int(data.get("transient_count") or 0),
            transient_reason=str(data.get("transient_reason") or ""),
            gate=dict(data.get("gate") or {}),
        )

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or value is False or value == "" or value == {} or (
                    f.name.startswith(("transient", "pin_")) and not value):
                continue
            out[PREVIOUS_LIVE_KEY if f.name == "previous_live" else f.name] = (
                value.isoformat() if isinstance(value, datetime) else value
            )
        if self.step == 0:
            out.pop("step", None)
        return out

    @classmethod
    def of(cls, deployment) -> Progress:
        return cls.from_json(deployment.progress)

    def promote(self) -> None:
        """End the current step's wait (or hold), or the pin's hold."""
        if self.window_waiting:
            return  # a deploy window is left only by an override with a reason
        if self.pin_held:
            self.pin_held, self.pin_released = False, True
            return
        self.promoted_step = self.step

    def promote_full(self) -> None:
        """Skip every remaining step (and the pin's hold): go live at the next step."""
        if self.pin_held:
            self.pin_held, self.pin_released = False, True
        self.promoted_full = True

    def transient_clear(self) -> None:
        self.transient_phase, self.transient_since, self.transient_count, self.transient_reason = "", None, 0, ""


@dataclass(frozen=True)
class StepConfig:
    weight: int
    wait: float | None  # seconds; None holds until promoted
    until: datetime | None = None  # instead of a wait: until this instant (a wall time in the strategy's tz)


@dataclass(frozen=True)
class RolloutConfig:
    """The project's settings as snapshotted into a deployment when it was created."""

    runtime: str = ""
    cluster: str = ""
    image_template: str = ""
    dockerfile: str = "Dockerfile"
    port: int = 8000
    replicas: int = 1
    env: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 512
    cpus: float = 1.0
    startup_probe_path: str = ""
    readiness_probe_path: str = ""
    liveness_probe_path: str = ""
    probe_period_seconds: float = 1.0
    probe_timeout_seconds: float = 1.0
    probe_failure_threshold: int = 3
    probe_success_threshold: int = 1
    probe_initial_delay_seconds: float = 0.0
    ready_timeout_seconds: float = 120.0
    drain_seconds: float = 10.0
    keep_warm_seconds: float = 30.0
    watch_seconds: float = 0.0
    steps: tuple[StepConfig, ...] = ()

    @classmethod
    def from_json(cls, data: dict | None) -> RolloutConfig:
        data = data or {}
        defaults = cls()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in ("steps", "env"):
                continue
            raw = data.get(f.name)
            default = getattr(defaults, f.name)
            values[f.name] = default if raw is None or raw == "" else type(default)(raw)
        # The env is one ciphertext in the snapshot (Project.runtime_config); decrypted here only.
        values["env"] = config_env(data)
        strategy = data.get("strategy") or {}
        steps = strategy.get("steps") or []
        values["steps"] = tuple(
            StepConfig(weight=max(0, min(100, int(s.get("weight", 0)))),
                       wait=None if s.get("wait", 0) is None else float(s.get("wait", 0)),
                       until=_wall(s.get("until"), strategy.get("tz", "UTC")))
            for s in steps
        )
        return cls(**values)

    @classmethod
    def of(cls, deployment) -> RolloutConfig:
        return cls.from_json(deployment.config)
