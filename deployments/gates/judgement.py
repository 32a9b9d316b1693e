"""The gate's judgement: pure functions of figures, rules and the tally so far.

`gate_judge` compares one window's figures of the new revision with the rules and with
the stable revision's figures over the same window.  `tally_record` counts consecutive
failures and says when the gate acts.  No clock and no I/O here: the caller passes the
figures and the time, so the unit tests drive both.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .rules import ERROR_RATIO_FLOOR, LATENCY_RATIO_FLOOR_MS, GateRules


@dataclass(frozen=True)
class Figures:
    """One revision's traffic over one window."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latency_ms: float | None = None
    latency_label: str = "p95"  # what latency_ms is ("p95", "mean of the last 1024")

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_json(self) -> dict:
        return {"requests": self.requests, "errors": self.errors, "seconds": round(self.seconds, 3),
                "error_rate": round(self.error_rate, 6), "latency_ms": self.latency_ms,
                "latency_label": self.latency_label}


class Kind(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WAIT = "wait"  # too little traffic to judge: never a pass


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    message: str
    data: dict = field(default_factory=dict)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def gate_judge(*, rules: GateRules, canary: Figures, stable: Figures | None,
               stable_reference: Figures | None = None) -> Verdict:
    """Judge one window.  `stable` is the stable revision over the same window (None: there
    is none); `stable_reference` is what the stable did before (the watch window after a
    switch, when the stable gets no traffic), used when `stable` has too little."""
    window = f"{canary.seconds:.0f} s"
    data = {"canary": canary.to_json(), "stable": stable.to_json() if stable else None}
    if canary.requests < rules.min_requests:
        return Verdict(Kind.WAIT, f"Too little traffic to judge: {canary.requests} request(s) to the new revision "
                                  f"over {window} (need {rules.min_requests}).", data)
    baseline, whose = stable, "stable"
    if baseline is None or baseline.requests < rules.min_requests:
        baseline, whose = stable_reference, "stable before the switch"
        if baseline is not None:
            data["stable_reference"] = baseline.to_json()
    failures: list[str] = []
    if rules.error_rate:
        rate = canary.error_rate
        versus = f" ({whose} {_pct(baseline.error_rate)})" if baseline is not None else " (stable: no traffic)"
        if rate > rules.max_error_rate:
            failures.append(f"error rate {_pct(rate)}{versus} over {window}, threshold "
                            f"{rules.max_error_rate * 100:g}%")
        elif baseline is not None and rate > rules.error_ratio * max(baseline.error_rate, ERROR_RATIO_FLOOR):
            failures.append(f"error rate {_pct(rate)}{versus} over {window}, threshold "
                            f"{rules.error_ratio:g}x the stable's")
    if rules.latency and canary.latency_ms is not None:
        label = canary.latency_label
        known = baseline is not None and baseline.latency_ms is not None
        versus = f" ({whose} {_ms(baseline.latency_ms)})" if known else ""
        if rules.max_latency_ms and canary.latency_ms > rules.max_latency_ms:
            failures.append(f"{label} {_ms(canary.latency_ms)}{versus} over {window}, threshold "
                            f"{_ms(rules.max_latency_ms)}")
        elif known and canary.latency_ms > rules.latency_ratio * max(baseline.latency_ms, LATENCY_RATIO_FLOOR_MS):
            failures.append(f"{label} {_ms(canary.latency_ms)}{versus} over {window}, threshold "
                            f"{rules.latency_ratio:g}x the stable's")
    if failures:
        return Verdict(Kind.FAIL, "; ".join(failures), data)
    parts = []
    if rules.error_rate:
        parts.append(f"error rate {_pct(canary.error_rate)}"
                     + (f" ({whose} {_pct(baseline.error_rate)})" if baseline is not None else ""))
    if rules.latency and canary.latency_ms is not None:
        parts.append(f"{canary.latency_label} {_ms(canary.latency_ms)}")
    return Verdict(Kind.PASS, f"{', '.join(parts) or 'no figures'} over {window}, "
                              f"{canary.requests} request(s)", data)


@dataclass
class Tally:
    """What the gate remembers between checks (kept in the deployment's progress)."""

    stage: str = ""  # "step:0", "step:1"... or "watch": a new stage starts a new count
    since: str = ""  # ISO time the current window started
    base: dict = field(default_factory=dict)  # cumulative counters at `since` (counter sources)
    checked: str = ""  # ISO time of the last check
    failures: int = 0  # consecutive failed checks
    passed: bool = False  # the last judged window in this stage passed
    last: str = ""  # the kind of the last verdict recorded on the timeline
    stable_reference: dict = field(default_factory=dict)  # the stable's last judged figures

    @classmethod
    def from_json(cls, data: dict | None) -> Tally:
        data = data or {}
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def reset(self, stage: str) -> None:
        """A new stage (the next step, or the watch window) starts its own count."""
        reference = self.stable_reference
        self.__init__(stage=stage, stable_reference=reference)


def tally_record(*, tally: Tally, verdict: Verdict, rules: GateRules) -> bool:
    """Count this verdict; True when the gate acts (the rules' number of failures in a row).

    A window with too little traffic is no evidence either way: it neither counts as a
    failure nor breaks a run of them, and it is never a pass (a stage none of whose
    windows had enough traffic is never promoted; its window keeps growing instead).
    """
    if verdict.kind == Kind.PASS:
        tally.failures, tally.passed = 0, True
        return False
    if verdict.kind == Kind.WAIT:
        return False
    tally.failures, tally.passed = tally.failures + 1, False
    return tally.failures >= rules.failures
