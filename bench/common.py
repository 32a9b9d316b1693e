"""Helpers shared by the benchmarks (each runs as `python bench/<name>.py`)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile_nearest(values: list[float], q: float) -> float:
    """The value at rank round(q% of n-1) of the sorted values (no interpolation)."""
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[index]
