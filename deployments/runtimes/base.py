"""The runtime interface: one shape, several runtimes (single host, Kubernetes).

Words: the *rollout engine* (deployments.engine) drives rollouts; a *runtime* runs
revisions and routes traffic; the single host's *container API* is Docker's or Podman's
Engine API.  The rollout engine only ever talks to a Runtime through these calls and these
dataclasses; no runtime detail (containers, HAProxy, Kubernetes objects) leaks into the
domain.  Every call is idempotent: the engine may repeat any of them after a crash.
Runtimes raise ``deployments.errors.TransientError`` for retryable trouble and
``PermanentError`` with a human message for the rest.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from deployments.route_names import STICKY_COOKIE, route_name_check, route_value_check

__all__ = ["STICKY_COOKIE", "route_name_check", "route_value_check"]  # re-exported for the runtimes

LogSink = Callable[[str], None]


@dataclass(frozen=True)
class Probe:
    """An HTTP GET probe against the revision's port; any 2xx/3xx is a success."""

    path: str
    period_seconds: float = 2.0
    timeout_seconds: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay_seconds: float = 0.0


@dataclass(frozen=True)
class GitCredential:
    """A project's deploy credential for a private repository (decrypted, in memory only).

    Never printed: repr hides both values, and the fetch scrubs them from git's messages.
    """

    token: str = field(default="", repr=False)  # HTTPS: sent as an Authorization header
    ssh_private_key: str = field(default="", repr=False)  # OpenSSH private key, for ssh URLs

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.ssh_private_key) if s)


@dataclass(frozen=True)
class BuildSpec:
    project: str  # project slug
    sha: str  # full commit sha
    clone_url: str  # a clone URL that passed deployments.sources (checked again at fetch)
    dockerfile: str = "Dockerfile"
    registry: str = ""  # push to this registry when set, e.g. "127.0.0.1:5000"
    credential: GitCredential | None = field(default=None, repr=False)
    branch: str = "main"  # the project's production branch: in-cluster builds fetch it, then spec.sha
    # Commits whose images a kept revision needs (lifecycle.images_kept): a build prunes
    # only the project's other images.  Empty: prune nothing.
    keep_shas: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BuiltImage:
    ref: str  # what to run, e.g. "hello:0123abcd..." or "registry/hello@sha256:..."
    digest: str = ""  # image id or repo digest, recorded in history
    reused: bool = False  # True when an image for that sha already existed
    # The commit's own message and author, read from the checkout (or the image's labels
    # when reused); the engine fills a deployment's empty message and author with them.
    commit_message: str = ""
    commit_author: str = ""


@dataclass(frozen=True)
class RevisionSpec:
    project: str  # project slug, also the routing host's first label
    revision: str  # stable revision id, the deployment number as a string ("7")
    image: str
    port: int = 8000
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    startup: Probe | None = None
    readiness: Probe | None = None
    liveness: Probe | None = None
    sha: str = ""
    memory_mb: int = 512  # limit per replica
    cpus: float = 1.0  # limit per replica, in cores
    # How long a replica keeps serving once it is taken out of rotation (requests in
    # flight finish, routers catch up).  Runtimes that stop replicas themselves
    # (Kubernetes) build it into the replica: a preStop pause and the grace period.
    drain_seconds: float = 0.0


@dataclass(frozen=True)
class TrafficRouting:
    """How a project's requests find a revision beyond the weights.

    sticky: a client keeps the revision (and replica) it was first sent to while the
        weights hold; the share of *clients* follows the weights.
    header / header_value, cookie (value "always"): a request carrying them goes to
        ``preview`` (the revision being rolled out) whatever the weights.
    preview: that revision ("" when nothing is being rolled out).
    """

    sticky: bool = False
    header: str = ""
    header_value: str = "always"
    cookie: str = ""
    preview: str = ""

    def __post_init__(self):
        if self.header:
            route_name_check(self.header, what="header")
            route_value_check(self.header_value)
        if self.cookie:
            route_name_check(self.cookie, what="cookie")

    @property
    def matches(self) -> bool:
        return bool(self.header or self.cookie)


class HealthState(enum.StrEnum):
    STARTING = "starting"  # not every replica has passed startup + readiness yet
    READY = "ready"  # every replica passed readiness
    FAILED = "failed"  # will not become ready (crashed, probe failures over threshold, missing)


@dataclass(frozen=True)
class RevisionHealth:
    state: HealthState
    ready_replicas: int = 0
    replicas: int = 0
    message: str = ""  # human readable: "readiness /readyz returned 503 (3 times)"


@dataclass(frozen=True)
class LivenessFailure:
    """A replica failed its liveness probe (or crashed) and was restarted."""

    revision: str
    message: str


class Availability(enum.StrEnum):
    """What a rollback to a revision would take, as the runtime sees it now."""

    WARM = "warm"  # it runs and answers: the switch is weights only
    COLD = "cold"  # its image (and, on one host, its stopped containers) is there: start, probe, switch
    UNAVAILABLE = "unavailable"  # it cannot start from what is kept (reason says why)


@dataclass(frozen=True)
class RevisionAvailability:
    state: Availability
    reason: str = ""  # human readable, e.g. "image hello:0123abc is not on this host"


@dataclass(frozen=True)
class ObservedRevision:
    """What the runtime really runs, for the reconciler."""

    project: str
    revision: str
    image: str = ""
    replicas: int = 0  # running replicas (containers or ready pods)
    weight: int = 0  # share of traffic it currently receives, 0..100


@dataclass(frozen=True)
class TrafficCounters:
    """What the router counted for one revision since it started counting (cumulative).

    The metric gates (deployments.gates) judge the difference between two readings.
    ``latency_ms`` is a reading, not a counter: the router's own recent response time.
    """

    requests: int = 0
    errors: int = 0  # answers in 5xx (and responses the server broke off)
    latency_ms: float | None = None
    latency_label: str = ""  # what latency_ms is, e.g. "mean of the last 1024"


class Runtime(abc.ABC):
    """Something that runs revisions and routes traffic to them."""

    name: str = ""

    @abc.abstractmethod
    def build(self, *, spec: BuildSpec, log: LogSink) -> BuiltImage:
        """Produce a runnable image for spec.sha; reuse an existing one, never rebuild it."""

    @abc.abstractmethod
    def start_revision(self, *, spec: RevisionSpec) -> None:
        """Ensure spec.replicas replicas of the revision run (creates or scales up)."""

    @abc.abstractmethod
    def revision_health(self, *, project: str, revision: str) -> RevisionHealth:
        """Probe (or read probe results of) the revision's replicas."""

    @abc.abstractmethod
    def set_traffic(self, *, project: str, weights: Mapping[str, int],
                    routing: TrafficRouting | None = None) -> None:
        """Route traffic by weight (0..100, summing to 100) across revisions.

        Revisions not named get no new traffic; requests in flight finish (drain).
        ``routing``: stickiness and header/cookie routing to its preview revision; None
        keeps what the runtime routes by now (the reconciler's repairs).
        """

    @abc.abstractmethod
    def retire_revision(self, *, project: str, revision: str, drain_seconds: float = 0) -> None:
        """Stop routing to the revision, let in-flight requests finish, and stop it cold:
        what it needs to start again (stopped containers, a Deployment at zero) is kept,
        so a later rollback is a start, not a create.  `discard_revision` removes it.

        A revision that does not exist is not an error.
        """

    @abc.abstractmethod
    def observe(self, *, project: str | None = None) -> list[ObservedRevision]:
        """List what actually runs (one project or all), for the reconciler."""

    def await_health(self, *, project: str, revision: str, timeout: float) -> RevisionHealth:
        """Wait up to ``timeout`` seconds for the revision to become READY or FAILED.

        Runtimes with a change feed (Kubernetes watches) block on it; the default reads the
        health once and lets the engine come back after a probe period.
        """
        return self.revision_health(project=project, revision=revision)

    def is_warm(self, *, spec: RevisionSpec) -> bool:
        """Does the revision run and pass readiness now, so a switch is only weights?

        Runtimes may answer faster than a full revision_health (a rollback waits on this).
        """
        return self.revision_health(project=spec.project, revision=spec.revision).state == HealthState.READY

    def check_liveness(self, *, project: str) -> list[LivenessFailure]:
        """Probe liveness of the project's replicas, restart the failed ones, report them.

        Orchestrators that restart containers themselves (Kubernetes) report nothing.
        """
        return []

    def adopt(self) -> list[str]:
        """Take over what already runs when the platform starts: read the routes back from
        the router and repair the runtime's own records; returns what it fixed.

        Orchestrators that keep their own state (Kubernetes) have nothing to adopt.
        """
        return []

    def discard_revision(self, *, project: str, revision: str) -> None:
        """Remove a revision outright (it never went live, or nobody keeps it any more)."""
        self.retire_revision(project=project, revision=revision, drain_seconds=0)

    def revisions_evict(self, *, project: str, keep: Collection[str]) -> list[str]:
        """Remove the project's cold revisions not named in ``keep`` (lifecycle's kept set);
        never one that runs or serves.  Returns the revisions removed."""
        return []

    def revisions_availability(self, *, project: str,
                               specs: Sequence[RevisionSpec]) -> dict[str, RevisionAvailability]:
        """For each revision: warm, cold or unavailable (with the reason), for the rollback
        targets' list.  The default asks readiness and calls anything else cold."""
        return {
            spec.revision: RevisionAvailability(Availability.WARM if self.is_warm(spec=spec) else Availability.COLD)
            for spec in specs
        }

    def project_remove(self, *, project: str) -> list[str]:
        """Remove everything the project has here (its project is archived): every revision,
        and where the runtime has them, its route and its images.  Idempotent; returns what
        it removed."""
        removed = []
        for item in self.observe(project=project):
            self.discard_revision(project=project, revision=item.revision)
            removed.append(f"revision {item.revision}")
        return removed

    def scale_to_zero(self, *, project: str, revision: str) -> None:
        """Keep the revision's definition but run no replicas (warm -> cold).

        Runtimes without such a notion simply retire the revision.
        """
        self.retire_revision(project=project, revision=revision)

    def traffic_counters(self, *, project: str) -> Mapping[str, TrafficCounters] | None:
        """revision -> the router's own cumulative counters, for the metric gates; None when
        this runtime's router keeps none (Kubernetes: the gates ask Prometheus)."""
        return None

    def metric_labels(self, *, project: str, revision: str) -> dict[str, str]:
        """Names a metrics system knows the revision's traffic by (namespace, service...),
        for the operator's query templates."""
        return {}
