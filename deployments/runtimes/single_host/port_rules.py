"""Port-forwarding rules that CNI left behind for removed containers.

With Podman's CNI backend, a container removed while its network teardown is still running
can leave its DNAT rule in the `CNI-HOSTPORT-DNAT` chain (a known CNI failure, seen here
several times an hour under load).  The stale rule keeps sending 127.0.0.1:<port> to the
dead container's address, so a replica published on that port later is unreachable: it
never becomes ready, and its deploy fails.  The single-host runtime removes such rules
after it removes containers, and `scripts/cni-stale-rules` does the same by hand.

Only rules whose comment names a container id the engine does not know are touched.  The
rules are read before the containers are listed: a rule that exists then belongs to a
container that is listed unless it was removed meanwhile (then the rule is stale anyway),
so a container being created concurrently never loses its rule.  Without root or
iptables (netavark, rootless) this does nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable

CHAIN = "CNI-HOSTPORT-DNAT"
RULE = re.compile(r'^-A CNI-HOSTPORT-DNAT .*id: \\"(?P<id>[0-9a-f]{64})\\".* -j (?P<chain>CNI-DN-[0-9a-f]+)$')


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-t", "nat", *args], capture_output=True, text=True, timeout=60)


def stale_port_rules_remove(*, container_ids: Callable[[], Iterable[str]], dry_run: bool = False) -> list[str]:
    """Remove the DNAT rules of containers `container_ids()` (every container the engine
    knows, full ids) does not list.  Returns the short ids of the containers whose rules
    were (or, dry_run, would be) removed."""
    if os.geteuid() != 0 or not shutil.which("iptables"):
        return []
    listed = _iptables("-S", CHAIN)
    if listed.returncode != 0:
        return []  # no CNI chain: nothing ever published through CNI here
    rules = [(m, line) for line in listed.stdout.splitlines() if (m := RULE.match(line))]
    if not rules:
        return []
    known = set(container_ids())
    removed = []
    for match, line in rules:
        if match["id"] in known:
            continue
        removed.append(match["id"][:12])
        if dry_run:
            continue
        spec = line.split(" ", 2)[2]  # the rule without "-A CNI-HOSTPORT-DNAT"
        _iptables("-D", CHAIN, *shlex.split(spec))
        _iptables("-F", match["chain"])
        _iptables("-X", match["chain"])
    return removed
