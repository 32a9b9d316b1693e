"""A project's gate rules: the JSON a project admin writes, checked, and its typed form.

    {}                                   no gates
    {"error_rate": true}                 roll back if the error rate exceeds 2% or is 5x the stable's
    {"latency": true}                    roll back if the latency exceeds 2x the stable's
    {"error_rate": true, "max_error_rate": 1, "error_ratio": 3, "latency": true,
     "latency_ratio": 1.5, "min_requests": 50, "failures": 3, "interval": 5}

Percentages are written in percent (2 means 2%).  Every field is attacker-controlled
input: only these keys, only numbers in these ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployments.errors import ValidationError

# The ratio rules compare against the stable's figure, but never below these floors: a
# stable revision with no errors (or 2 ms answers) must not make one error (or 5 ms) a failure.
ERROR_RATIO_FLOOR = 0.005  # 0.5%
LATENCY_RATIO_FLOOR_MS = 20.0

_NUMBERS = {
    # key: (low, high, integer?)
    "max_error_rate": (0.0, 100.0, False),
    "error_ratio": (1.0, 1000.0, False),
    "latency_ratio": (1.0, 1000.0, False),
    "max_latency_ms": (1.0, 600_000.0, False),
    "min_requests": (1, 1_000_000, True),
    "failures": (1, 100, True),
    "interval": (0.5, 600.0, False),
}
_FLAGS = ("error_rate", "latency")


@dataclass(frozen=True)
class GateRules:
    error_rate: bool = False  # the error-rate gate is on
    max_error_rate: float = 0.02  # a share, 0..1
    error_ratio: float = 5.0  # x the stable's error rate
    latency: bool = False  # the latency gate is on
    latency_ratio: float = 2.0  # x the stable's latency
    max_latency_ms: float | None = None  # an absolute ceiling, if the team gives one
    min_requests: int = 20  # fewer requests to the new revision in a window: too little to judge
    failures: int = 2  # consecutive failed checks before the gate acts
    interval: float = 1.0  # seconds between checks (a bad canary is out within ~2 s of its first check)

    @property
    def enabled(self) -> bool:
        return self.error_rate or self.latency

    @classmethod
    def from_json(cls, data: dict | None) -> GateRules:
        """From a validated dict (a deployment's snapshot); unknown or bad values fall back."""
        data = data if isinstance(data, dict) else {}
        defaults = cls()
        values: dict = {}
        for key in _FLAGS:
            values[key] = bool(data.get(key, False))
        for key, (low, high, integer) in _NUMBERS.items():
            raw = data.get(key)
            if raw is None or isinstance(raw, bool) or not isinstance(raw, int | float):
                continue
            value = min(high, max(low, raw))
            values[key] = int(value) if integer else float(value)
        if "max_error_rate" in values:
            values["max_error_rate"] = values["max_error_rate"] / 100
        return cls(**{**defaults.__dict__, **values})

    @classmethod
    def of(cls, deployment) -> GateRules:
        return cls.from_json((deployment.config or {}).get("gates"))

    def describe(self) -> list[str]:
        """The rules in words, for the dashboard."""
        out = []
        if self.error_rate:
            out.append(f"roll back if the error rate exceeds {self.max_error_rate * 100:g}% "
                       f"or is {self.error_ratio:g}x the stable's")
        if self.latency:
            text = f"roll back if latency exceeds {self.latency_ratio:g}x the stable's"
            if self.max_latency_ms:
                text += f" or {self.max_latency_ms:g} ms"
            out.append(text)
        if out:
            out.append(f"after {self.failures} failed check(s) in a row, checked every {self.interval:g}s, "
                       f"with at least {self.min_requests} requests to judge")
        return out


def gates_validate(value) -> dict:
    """Check gate rules a project admin wrote; raises the domain's ValidationError."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError('Give an object such as {"error_rate": true, "latency": true}.')
    unknown = set(value) - set(_FLAGS) - set(_NUMBERS)
    if unknown:
        raise ValidationError(f"Unknown gate keys: {', '.join(sorted(map(str, unknown)))[:200]}.")
    out: dict = {}
    for key in _FLAGS:
        if key in value:
            if not isinstance(value[key], bool):
                raise ValidationError(f"{key}: give true or false.")
            out[key] = value[key]
    for key, (low, high, integer) in _NUMBERS.items():
        if key not in value or (key == "max_latency_ms" and value[key] is None):
            continue
        raw = value[key]
        kind = int if integer else int | float
        if isinstance(raw, bool) or not isinstance(raw, kind) or not low <= raw <= high:
            what = "an integer" if integer else "a number"
            raise ValidationError(f"{key}: give {what} from {low:g} to {high:g}.")
        out[key] = raw
    return out
