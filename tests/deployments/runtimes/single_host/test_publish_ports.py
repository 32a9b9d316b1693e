"""Replicas publish their loopback port from a range outside the kernel's ephemeral one:
a port forwarding rule the engine leaves behind for a removed container (a known CNI
failure) can then never shadow a port some program got by binding port 0."""

from __future__ import annotations

import socket

import pytest

from deployments.errors import PermanentError, TransientError
from deployments.runtimes.single_host import containers as c
from deployments.runtimes.single_host.runtime import SingleHostRuntime


def test_the_range_is_parsed_and_checked():
    assert c.publish_ports_parse("20000-29999") == (20000, 29999)
    assert c.publish_ports_parse(" 21000 - 21010 ") == (21000, 21010)
    assert c.publish_ports_parse("") is None  # the engine picks
    for bad in ("80-90", "30000-20000", "20000", "20000-70000", "a-b", "20000-29999;rm"):
        with pytest.raises(ValueError):
            c.publish_ports_parse(bad)


def test_a_bad_range_is_refused_when_the_runtime_is_built(tmp_path):
    with pytest.raises(PermanentError, match="SWITCHBACK_PUBLISH_PORTS"):
        SingleHostRuntime(state_dir=str(tmp_path), publish_ports="1-2")


def test_the_default_range_is_below_the_ephemeral_one():
    low, high = c.publish_ports_parse(c.PUBLISH_PORTS_DEFAULT)
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low, ephemeral_high = (int(v) for v in f.read().split())
    assert high < ephemeral_low or low > ephemeral_high


def test_a_port_in_use_is_skipped_and_a_full_range_is_a_transient_error(monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(TransientError, match="no free port"):
            c.publish_port_pick("127.0.0.1", (port, port), tries=5)
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        other = free.getsockname()[1]
        free.close()
        # The pick lands on the taken port first, then on a free one: it takes the free one.
        picks = iter([port, other])
        monkeypatch.setattr(c.random, "randint", lambda low, high: next(picks))
        assert c.publish_port_pick("127.0.0.1", (1024, 65535)) == other
    finally:
        taken.close()
