"""Promotion strategies are data, checked here and interpreted by the engine.

    {}                                               switch all at once when ready
    {"steps": [{"weight": 10, "wait": 60},
               {"weight": 50, "wait": 60}]}          canary 10% -> 50% -> 100%
    {"steps": [{"weight": 10, "wait": null}]}        hold 10% until promoted
"""

from __future__ import annotations

from rest_framework import serializers


def strategy_validate(value) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise serializers.ValidationError('Give an object such as {"steps": [{"weight": 10, "wait": 60}]}.')
    unknown = set(value) - {"steps"}
    if unknown:
        raise serializers.ValidationError(f"Unknown strategy keys: {', '.join(sorted(unknown))}.")
    steps = value.get("steps", [])
    if not isinstance(steps, list) or len(steps) > 20:
        raise serializers.ValidationError("steps: give a list of at most 20 steps.")
    previous = 0
    for i, step in enumerate(steps, 1):
        if not isinstance(step, dict) or set(step) - {"weight", "wait"}:
            raise serializers.ValidationError(f'step {i}: give {{"weight": 1-99, "wait": seconds or null}}.')
        weight = step.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 99:
            raise serializers.ValidationError(f"step {i}: weight must be an integer from 1 to 99.")
        if weight <= previous:
            raise serializers.ValidationError(f"step {i}: weights must increase ({weight} after {previous}).")
        previous = weight
        wait = step.get("wait", 0)
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, int | float)
                                 or not 0 <= wait <= 7 * 86400):
            raise serializers.ValidationError(f"step {i}: wait must be seconds (0 to 604800) or null to hold.")
    return {"steps": steps} if steps else {}
