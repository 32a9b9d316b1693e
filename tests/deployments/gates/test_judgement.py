"""The gate's judgement and its tally, as pure functions (no clock, no I/O)."""

import pytest

from deployments.errors import ValidationError
from deployments.gates.judgement import Figures, Kind, Tally, gate_judge, tally_record
from deployments.gates.rules import GateRules, gates_validate

DEFAULT = GateRules.from_json({"error_rate": True, "latency": True})


def window(requests, errors=0, seconds=30.0, latency=None):
    return Figures(requests=requests, errors=errors, seconds=seconds, latency_ms=latency)


def test_the_message_names_figures_stable_window_and_threshold():
    verdict = gate_judge(rules=DEFAULT, canary=window(1000, 79), stable=window(9000, 9))
    assert verdict.kind == Kind.FAIL
    assert verdict.message == "error rate 7.9% (stable 0.1%) over 30 s, threshold 2%"
    assert verdict.data["canary"]["errors"] == 79 and verdict.data["stable"]["requests"] == 9000


def test_too_little_traffic_is_a_wait_whatever_the_errors():
    verdict = gate_judge(rules=DEFAULT, canary=window(19, 19), stable=window(1000))
    assert verdict.kind == Kind.WAIT and "19 request(s)" in verdict.message and "need 20" in verdict.message


def test_ratio_to_the_stable_fails_below_the_threshold():
    # 1.5% is under 2%, and under 5x the stable's 0.1% floored at 0.5% (2.5%): a pass.
    assert gate_judge(rules=DEFAULT, canary=window(1000, 15), stable=window(1000, 1)).kind == Kind.PASS
    rules = GateRules.from_json({"error_rate": True, "error_ratio": 2})
    verdict = gate_judge(rules=rules, canary=window(1000, 15), stable=window(1000, 1))
    assert verdict.kind == Kind.FAIL and verdict.message.endswith("threshold 2x the stable's")


def test_a_stable_that_errs_as_much_is_no_reason_to_fail_by_ratio():
    rules = GateRules.from_json({"error_rate": True, "max_error_rate": 50})
    assert gate_judge(rules=rules, canary=window(1000, 100), stable=window(1000, 90)).kind == Kind.PASS


def test_latency_against_twice_the_stable():
    verdict = gate_judge(rules=DEFAULT, canary=window(100, latency=450), stable=window(900, latency=200))
    assert verdict.kind == Kind.FAIL and verdict.message.startswith("p95 450 ms (stable 200 ms)")
    assert gate_judge(rules=DEFAULT, canary=window(100, latency=390), stable=window(900, latency=200)).kind == Kind.PASS
    # 2x of a 3 ms stable is noise: the floor (20 ms) is what is doubled.
    assert gate_judge(rules=DEFAULT, canary=window(100, latency=30), stable=window(900, latency=3)).kind == Kind.PASS


def test_watch_window_uses_the_stable_figures_from_before_the_switch():
    rules = GateRules.from_json({"error_rate": True, "max_error_rate": 10})
    verdict = gate_judge(rules=rules, canary=window(500, 15), stable=window(0),
                         stable_reference=window(900, 0))
    assert verdict.kind == Kind.FAIL and "(stable before the switch 0.0%)" in verdict.message
    assert "5x the stable's" in verdict.message


def test_consecutive_failures_before_acting_and_waits_neither_count_nor_break():
    rules = GateRules.from_json({"error_rate": True, "failures": 3})
    tally = Tally()
    fail = gate_judge(rules=rules, canary=window(100, 50), stable=window(100))
    wait = gate_judge(rules=rules, canary=window(1, 1), stable=window(100))
    ok = gate_judge(rules=rules, canary=window(100), stable=window(100))
    assert [tally_record(tally=tally, verdict=v, rules=rules) for v in (fail, fail, ok)] == [False, False, False]
    assert tally.failures == 0 and tally.passed
    acted = [tally_record(tally=tally, verdict=v, rules=rules) for v in (fail, wait, fail, wait, fail)]
    assert acted == [False, False, False, False, True] and not tally.passed


def test_a_wait_is_never_a_pass():
    rules = GateRules.from_json({"error_rate": True})
    tally = Tally()
    wait = gate_judge(rules=rules, canary=window(3), stable=window(100))
    for _ in range(100):
        tally_record(tally=tally, verdict=wait, rules=rules)
    assert not tally.passed


@pytest.mark.parametrize("value", [
    [], "yes", {"error_rate": "true"}, {"error_rate": 1}, {"nope": True}, {"max_error_rate": -1},
    {"max_error_rate": 101}, {"failures": 0}, {"failures": 2.5}, {"interval": 0}, {"min_requests": True},
    {"max_error_rate": float("nan")}, {"error_ratio": float("inf")}, {"interval": "2"}, {"x" * 10_000: 1},
])
def test_hostile_rules_are_refused_with_a_message(value):
    with pytest.raises(ValidationError) as info:
        gates_validate(value)
    assert info.value.message and len(info.value.message) < 300


def test_rules_round_trip_and_defaults():
    assert gates_validate(None) == {} and gates_validate({}) == {}
    value = gates_validate({"error_rate": True, "max_error_rate": 1, "failures": 3})
    rules = GateRules.from_json(value)
    assert rules.enabled and rules.max_error_rate == 0.01 and rules.failures == 3 and not rules.latency
    assert not GateRules.from_json({"max_error_rate": 1}).enabled
    assert GateRules.from_json({"error_rate": True}).describe()[0] == (
        "roll back if the error rate exceeds 2% or is 5x the stable's")
