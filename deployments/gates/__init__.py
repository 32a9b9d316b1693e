"""Metric gates: a canary's error rate and latency, judged against the project's rules and
the stable revision, and an automatic rollback when they fail.

rules       the project's gate settings (JSON, validated) and their typed form
judgement   pure: one window's verdict, the consecutive-failure tally
sources     HAProxy's own counters (single host), Prometheus queries (Kubernetes)
checks      what the engine and the watch window call
"""

from .checks import GateOutcome, gate_after_switch, gate_cap, gate_during_rollout
from .rules import GateRules, gates_validate

__all__ = ["GateOutcome", "GateRules", "gate_after_switch", "gate_cap", "gate_during_rollout", "gates_validate"]
