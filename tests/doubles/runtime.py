"""An in-memory Runtime for engine tests (the 'fake scheduler' of deis/controller).

It records every call and lets a test decide what health each revision reports.  The
real runtimes (single host, Kubernetes) have their own suites against real parts.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from deployments.errors import PermanentError, TransientError
from deployments.runtimes.base import (
    Availability,
    BuildSpec,
    BuiltImage,
    HealthState,
    LivenessFailure,
    ObservedRevision,
    RevisionAvailability,
    RevisionHealth,
    RevisionSpec,
    Runtime,
    TrafficCounters,
)


class MemoryRuntime(Runtime):
    name = "memory"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.images: dict[tuple[str, str], str] = {}
        self.builds: list[str] = []
        self.running: dict[tuple[str, str], RevisionSpec] = {}
        self.cold: set[tuple[str, str]] = set()  # retired, kept stopped (a start brings it back)
        self.keep_shas: list[frozenset[str]] = []  # what each build was told to keep
        self.pruned: set[str] = set()  # image refs a test says are gone
        self.weights: dict[str, dict[str, int]] = {}
        self.routing: dict[str, object] = {}  # project -> the TrafficRouting of its last weight change
        self.health: dict[tuple[str, str], RevisionHealth] = {}
        self.calls: list[tuple] = []
        self.fail_build: dict[str, str] = {}  # sha -> message
        self.commits: dict[str, tuple[str, str]] = {}  # sha -> (message, author) the checkout tells
        self.default_health = RevisionHealth(HealthState.READY, 1, 1)
        self.liveness_failures: list[LivenessFailure] = []  # reported once, then cleared
        self.transient_build: dict[str, str] = {}  # sha -> message, raised as TransientError
        # Called at the start of a method with its keyword arguments: tests pause a worker
        # there (a barrier) to interleave it with another one deterministically.
        self.hooks: dict[str, object] = {}
        # What a user would have seen fail: traffic routed to a revision that does not run,
        # or a revision removed while it still served traffic.
        self.violations: list[str] = []
        # The router's cumulative counters per project and revision, as a test sets them
        # (None: this runtime keeps none, like Kubernetes).
        self.counters: dict[str, dict[str, TrafficCounters]] | None = None

    def _hook(self, name: str, **kwargs) -> None:
        hook = self.hooks.get(name)
        if hook is not None:
            hook(**kwargs)

    def build(self, *, spec: BuildSpec, log) -> BuiltImage:
        self.calls.append(("build", spec.project, spec.sha))
        self.keep_shas.append(spec.keep_shas)
        if spec.sha in self.transient_build:
            raise TransientError(self.transient_build[spec.sha])
        if spec.sha in self.fail_build:
            log("step 1/2 : RUN make")
            raise PermanentError(f"Build failed: {self.fail_build[spec.sha]}")
        key = (spec.project, spec.sha)
        if key in self.images:
            return BuiltImage(ref=self.images[key], digest="sha256:" + spec.sha, reused=True)
        log(f"building {spec.project} at {spec.sha[:7]}")
        self.builds.append(spec.sha)
        self.images[key] = f"{spec.project}:{spec.sha}"
        message, author = self.commits.get(spec.sha, ("", ""))
        return BuiltImage(ref=self.images[key], digest="sha256:" + spec.sha, commit_message=message,
                          commit_author=author)

    def start_revision(self, *, spec: RevisionSpec) -> None:
        self._hook("start_revision", spec=spec)
        self.calls.append(("start", spec.project, spec.revision))
        self.cold.discard((spec.project, spec.revision))
        self.running[(spec.project, spec.revision)] = spec

    def revision_health(self, *, project: str, revision: str) -> RevisionHealth:
        if (project, revision) not in self.running:
            return RevisionHealth(HealthState.FAILED, message="not running")
        return self.health.get((project, revision), self.default_health)

    def set_traffic(self, *, project: str, weights: Mapping[str, int], routing=None) -> None:
        self._hook("set_traffic", project=project, weights=dict(weights))
        if routing is not None:  # what a real runtime would route by beyond the weights
            self.routing[project] = routing
        self.calls.append(("traffic", project, dict(weights)))
        for revision, weight in weights.items():
            if weight and (project, revision) not in self.running:
                self.violations.append(f"{weight}% of traffic to revision {revision}, which does not run")
        self.weights[project] = {k: v for k, v in weights.items() if v}

    def retire_revision(self, *, project: str, revision: str, drain_seconds: float = 0) -> None:
        self._hook("retire_revision", project=project, revision=revision)
        self.calls.append(("retire", project, revision))
        served = self.weights.get(project, {}).get(revision, 0)
        if served:
            self.violations.append(f"revision {revision} removed while it served {served}% of traffic")
        if self.running.pop((project, revision), None) is not None:
            self.cold.add((project, revision))
        self.weights.get(project, {}).pop(revision, None)

    def discard_revision(self, *, project: str, revision: str) -> None:
        self.retire_revision(project=project, revision=revision)
        self.calls.append(("discard", project, revision))
        self.cold.discard((project, revision))

    def revisions_evict(self, *, project: str, keep) -> list[str]:
        gone = sorted(r for p, r in self.cold if p == project and r not in set(keep))
        for revision in gone:
            self.cold.discard((project, revision))
            self.calls.append(("evict", project, revision))
        return gone

    def revisions_availability(self, *, project: str, specs) -> dict[str, RevisionAvailability]:
        answers = {}
        for spec in specs:
            if (project, spec.revision) in self.running and self.is_warm(spec=spec):
                answers[spec.revision] = RevisionAvailability(Availability.WARM)
            elif spec.image in self.pruned:
                answers[spec.revision] = RevisionAvailability(Availability.UNAVAILABLE, f"image {spec.image} is gone")
            else:
                answers[spec.revision] = RevisionAvailability(Availability.COLD, "its image is kept")
        return answers

    def check_liveness(self, *, project: str) -> list[LivenessFailure]:
        failures, self.liveness_failures = self.liveness_failures, []
        return failures

    def observe(self, *, project: str | None = None) -> list[ObservedRevision]:
        observed = [
            ObservedRevision(project=p, revision=r, image=s.image, replicas=s.replicas,
                             weight=self.weights.get(p, {}).get(r, 0))
            for (p, r), s in sorted(self.running.items())
            if project is None or p == project
        ]
        self._hook("observed", project=project)  # after the snapshot was taken
        return observed

    def traffic_counters(self, *, project: str):
        return None if self.counters is None else dict(self.counters.get(project, {}))

    def count(self, project: str, revision: str, *, requests: int, errors: int = 0,
              latency_ms: float | None = None) -> None:
        """Add traffic to a revision's counters (what the router would have counted)."""
        if self.counters is None:
            self.counters = {}
        now = self.counters.setdefault(project, {}).get(revision, TrafficCounters())
        self.counters[project][revision] = TrafficCounters(
            requests=now.requests + requests, errors=now.errors + errors,
            latency_ms=latency_ms if latency_ms is not None else now.latency_ms, latency_label="p95")


memory_runtime = MemoryRuntime()


def factory() -> MemoryRuntime:
    return memory_runtime
