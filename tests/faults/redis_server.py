"""A private redis-server on a free loopback port, which a fault test may stop and start
(bench/faultkit.py's, without append-only: an outage test wants the broker to lose nothing
it had not already handed out, as a plain Redis would).

The machine's shared Redis (:6379) is never touched: other instances' workers use it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.faultkit import RedisServer as _RedisServer


class RedisServer(_RedisServer):
    def __init__(self, directory: Path):
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server not installed (run scripts/install-system-deps.sh)")
        super().__init__(directory, appendonly=False)
