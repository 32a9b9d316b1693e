"""HTTP probes with Kubernetes-like semantics, driven by the caller's calls.

revision_health must not block, so nothing probes in the background: each call runs at
most one probe per replica and per kind, and only when the probe is due (initial delay
passed, period elapsed since the last one); otherwise the last result stands.  Counters
live in a small JSON file per revision under the state dir, keyed by container id, so any
process (any Celery worker) sees the same history and a replaced container starts fresh.
A call is therefore bounded by the probe timeout.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field

from deployments.runtimes.base import Probe


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str  # "returned 503", "timed out after 1s", "connection refused"


def http_probe(host: str, port: int, path: str, timeout: float) -> ProbeResult:
    """GET path; any 2xx or 3xx is a success (redirects are not followed)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "switchback-probe", "Connection": "close"})
        status = conn.getresponse().status
        return ProbeResult(200 <= status < 400, f"returned {status}")
    except TimeoutError:
        return ProbeResult(False, f"timed out after {timeout:g}s")
    except ConnectionRefusedError:
        return ProbeResult(False, "connection refused")
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f"failed: {exc.__class__.__name__} {exc}".strip())
    finally:
        conn.close()


def tcp_probe(host: str, port: int, timeout: float) -> ProbeResult:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ProbeResult(True, "accepts connections")
    except OSError as exc:
        return ProbeResult(False, f"port not accepting connections ({exc.strerror or exc})")


@dataclass
class Counter:
    successes: int = 0  # consecutive
    failures: int = 0  # consecutive
    last_at: float = 0.0
    detail: str = ""
    passed: bool = False  # startup: passed once; readiness: currently ready
    ever_passed: bool = False

    def due(self, probe: Probe, first_seen: float, now: float) -> bool:
        if now < first_seen + probe.initial_delay_seconds:
            return False
        # (a millisecond's grace: a caller ticking at the period is not skipped by float error)
        return self.last_at == 0.0 or now - self.last_at >= probe.period_seconds - 1e-3

    def record(self, probe: Probe, result: ProbeResult, now: float) -> None:
        self.last_at, self.detail = now, result.detail
        if result.ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= probe.success_threshold:
                self.passed = self.ever_passed = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= probe.failure_threshold:
                self.passed = False


@dataclass
class ReplicaProbes:
    first_seen: float
    startup: Counter = field(default_factory=Counter)
    readiness: Counter = field(default_factory=Counter)
    liveness: Counter = field(default_factory=Counter)

    @classmethod
    def from_json(cls, data: dict) -> ReplicaProbes:
        return cls(
            first_seen=data["first_seen"], **{k: Counter(**data[k]) for k in ("startup", "readiness", "liveness")}
        )


def run(
    probe: Probe | None, counter: Counter, first_seen: float, host: str, port: int, now: float | None = None
) -> bool:
    """Probe if due; return True when a probe actually ran."""
    now = time.time() if now is None else now
    if probe is None or not counter.due(probe, first_seen, now):
        return False
    if probe.path:
        result = http_probe(host, port, probe.path, probe.timeout_seconds)
    else:
        result = tcp_probe(host, port, probe.timeout_seconds)
    counter.record(probe, result, now)
    return True


def probes_to_label(**probes: Probe | None) -> str:
    return json.dumps({k: asdict(v) for k, v in probes.items() if v is not None}, sort_keys=True, separators=(",", ":"))


def probes_from_label(text: str) -> dict[str, Probe]:
    try:
        return {k: Probe(**v) for k, v in json.loads(text or "{}").items()}
    except (ValueError, TypeError):
        return {}


class ProbeStore:
    """Per-revision probe counters on disk (one small JSON file each)."""

    def __init__(self, state_dir: str):
        self.dir = os.path.join(state_dir, "probes")
        os.makedirs(self.dir, exist_ok=True)

    def _path(self, project: str, revision: str) -> str:
        return os.path.join(self.dir, f"{project}--{revision}.json")

    def load(self, project: str, revision: str) -> dict[str, ReplicaProbes]:
        try:
            with open(self._path(project, revision)) as f:
                return {cid: ReplicaProbes.from_json(v) for cid, v in json.load(f).items()}
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return {}

    def save(self, project: str, revision: str, data: dict[str, ReplicaProbes]) -> None:
        path = self._path(project, revision)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({cid: asdict(v) for cid, v in data.items()}, f)
        os.replace(tmp, path)

    def delete(self, project: str, revision: str) -> None:
        try:
            os.unlink(self._path(project, revision))
        except FileNotFoundError:
            pass
