"""Stale CNI port forwarding: the rules of removed containers go, nobody else's (real iptables)."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess

import pytest

from deployments.runtimes.single_host.port_rules import CHAIN, stale_port_rules_remove

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables"), reason="needs root and iptables")


def nat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-t", "nat", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def rules():
    """Two rules shaped as CNI's portmap writes them, on ports nothing uses: one for a
    container the engine knows, one for a removed one."""
    created_chain = nat("-S", CHAIN).returncode != 0
    if created_chain:
        nat("-N", CHAIN)
    made = []
    for port in (9, 13):
        cid = secrets.token_hex(32)
        sub = f"CNI-DN-{secrets.token_hex(10)}"  # chain names: 28 characters at most
        nat("-N", sub)
        nat("-A", sub, "-p", "tcp", "--dport", str(port), "-j", "DNAT", "--to-destination", "10.255.0.9:80")
        nat("-A", CHAIN, "-d", "127.0.0.99/32", "-p", "tcp", "-m", "comment", "--comment",
            f'dnat name: "cni-podman9" id: "{cid}"', "-m", "multiport", "--dports", str(port), "-j", sub)
        made.append((cid, sub))
    yield made
    for cid, sub in made:
        for line in nat("-S", CHAIN).stdout.splitlines():
            if cid in line:
                nat("-D", CHAIN, *shlex.split(line.split(" ", 2)[2]))
        nat("-F", sub)
        nat("-X", sub)
    if created_chain:
        nat("-X", CHAIN)


def engine_ids() -> list[str]:
    """Every container the engine knows (other tests' containers have real rules)."""
    if not shutil.which("podman"):
        return []
    return subprocess.run(["podman", "ps", "-aq", "--no-trunc"], capture_output=True, text=True,
                          timeout=60).stdout.split()


def test_only_the_rules_of_removed_containers_go(rules):
    (known, known_chain), (gone, gone_chain) = rules
    asked = []

    def container_ids():
        # Asked after the rules were read: a container created meanwhile is listed here.
        asked.append(nat("-S", CHAIN).stdout)
        return [known, *engine_ids()]

    would = stale_port_rules_remove(container_ids=container_ids, dry_run=True)
    assert gone[:12] in would and known[:12] not in would
    assert gone in nat("-S", CHAIN).stdout  # a dry run changes nothing
    removed = stale_port_rules_remove(container_ids=container_ids)
    assert gone[:12] in removed and known[:12] not in removed
    after = nat("-S").stdout
    assert known in after and known_chain in after
    assert gone not in after and gone_chain not in after  # the rule and its chain
    assert asked and gone in asked[0]


def test_nothing_to_do_costs_no_container_listing():
    calls = []
    if CHAIN in nat("-S").stdout and "id: " in nat("-S", CHAIN).stdout:
        pytest.skip("this machine has CNI port forwarding in use")
    assert stale_port_rules_remove(container_ids=lambda: calls.append(1) or []) == []
    assert calls == []
