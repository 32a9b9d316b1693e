"""One replica's health from its container state and its probe counters."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from deployments.runtimes.base import Probe

from . import probes as p
from .containers import exit_summary, host_port

# Without a readiness probe a replica is ready once its port accepts connections.
DEFAULT_READINESS = Probe(path="", period_seconds=0.5, timeout_seconds=1.0, failure_threshold=1_000_000)
# A booting replica (its startup or readiness probe never passed yet) is asked this often,
# so a start is seen within a tenth of a second, not a probe period later (a cold rollback
# waits on it).  Each ask is one loopback request; the failure budget stays
# failure_threshold x period_seconds.
BOOT_POLL_SECONDS = 0.1


def booting(probe: Probe) -> Probe:
    """The probe as run before its first success: more often, with the same time budget."""
    if probe.period_seconds <= BOOT_POLL_SECONDS:
        return probe
    factor = probe.period_seconds / BOOT_POLL_SECONDS
    return replace(probe, period_seconds=BOOT_POLL_SECONDS,
                   failure_threshold=math.ceil(probe.failure_threshold * factor))


@dataclass(frozen=True)
class ReplicaHealth:
    ready: bool = False
    failed: str = ""  # why it will not become ready; empty when not failed
    waiting: str = ""  # why it is not ready yet


def evaluate(
    container,
    *,
    port: int,
    probes: dict[str, Probe],
    counters: p.ReplicaProbes,
    host: str = "127.0.0.1",
    now: float | None = None,
) -> ReplicaHealth:
    """Run the probes that are due (startup first, then readiness) and judge the replica."""
    now = time.time() if now is None else now
    status = container.status
    if status in ("exited", "dead", "stopped"):
        return ReplicaHealth(failed=exit_summary(container))
    if status != "running":
        return ReplicaHealth(waiting=f"container is {status}")
    hport = host_port(container, port)
    if hport is None:
        return ReplicaHealth(failed=f"port {port} is not published")

    startup = probes.get("startup")
    if startup is not None and not counters.startup.passed:
        startup = booting(startup)
        p.run(startup, counters.startup, counters.first_seen, host, hport, now)
        c = counters.startup
        if c.failures >= startup.failure_threshold:
            return ReplicaHealth(failed=f"startup {startup.path} {c.detail} ({c.failures} times)")
        if not c.passed:
            return ReplicaHealth(waiting=f"startup {startup.path} {c.detail or 'not probed yet'}")

    readiness = probes.get("readiness") or DEFAULT_READINESS
    if not counters.readiness.ever_passed:
        readiness = booting(readiness)
    p.run(readiness, counters.readiness, counters.first_seen, host, hport, now)
    c = counters.readiness
    label = f"readiness {readiness.path}" if readiness.path else f"port {port}"
    if c.passed:
        return ReplicaHealth(ready=True)
    # Not ready yet, however often readiness failed before its first success: a slow
    # start is not a failure.  The rollout's ready deadline (ready_timeout_seconds) judges
    # it; only a crash (above) or a liveness failure fails a replica early.
    return ReplicaHealth(
        waiting=f"{label} {c.detail or 'not probed yet'}" + (f" ({c.failures} times)" if c.failures else "")
    )


def liveness_failure(
    container,
    *,
    port: int,
    probes: dict[str, Probe],
    counters: p.ReplicaProbes,
    host: str = "127.0.0.1",
    now: float | None = None,
) -> str:
    """Run the liveness probe if due; return why the replica must restart, or ''."""
    liveness = probes.get("liveness")
    startup = probes.get("startup")
    if liveness is None or container.status != "running":
        return ""
    if startup is not None and not counters.startup.passed:
        return ""  # liveness starts once startup has passed, as in Kubernetes
    hport = host_port(container, port)
    if hport is None:
        return ""
    p.run(liveness, counters.liveness, counters.first_seen, host, hport, now)
    c = counters.liveness
    if c.failures >= liveness.failure_threshold:
        return f"liveness {liveness.path} {c.detail} ({c.failures} times)"
    return ""
