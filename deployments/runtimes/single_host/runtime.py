"""SingleHostRuntime: containers through the Docker Engine API, traffic through HAProxy."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import docker.errors

from deployments.errors import PermanentError, TransientError
from deployments.runtimes.base import (
    Availability,
    BuildSpec,
    BuiltImage,
    HealthState,
    LivenessFailure,
    LogSink,
    ObservedRevision,
    Probe,
    RevisionAvailability,
    RevisionHealth,
    RevisionSpec,
    Runtime,
    TrafficCounters,
    TrafficRouting,
)

from . import containers as c
from . import probes as p
from .engine_api import EngineHandle, connect
from .haproxy import KEEP, HAProxyRouter
from .haproxy_config import HealthCheck, RouteRules, server_name, split_weights
from .health import BOOT_POLL_SECONDS, evaluate, liveness_failure
from .images import LABEL_PROJECT, LABEL_SHA, build_image, check_slug, find_image, prune_images
from .networks import network_ensure, network_remove
from .port_rules import stale_port_rules_remove

logger = logging.getLogger(__name__)

_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]{0,30}$")
_SERVER = re.compile(r"^r(?P<revision>.+)-(?P<index>\d+)$")


def _check_revision(revision: str) -> str:
    if not _REVISION.match(str(revision)):
        raise PermanentError(f"invalid revision id {revision!r}")
    return str(revision)


def _health_check(readiness: Probe | None) -> HealthCheck | None:
    """HAProxy checks every server on the readiness probe, with its period and thresholds."""
    if readiness is None:
        return None
    try:
        return HealthCheck(
            path=readiness.path,
            inter_ms=max(100, round(readiness.period_seconds * 1000)),
            fall=max(1, readiness.failure_threshold),
            rise=max(1, readiness.success_threshold),
            timeout_ms=max(100, round(readiness.timeout_seconds * 1000)),
        )
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc


def pullable(ref: str) -> bool:
    """Does the reference name a registry (an image built here only has a local name)?"""
    name = ref.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:  # a tag, not a registry's port
        name = name.rsplit(":", 1)[0]
    first, slash, _ = name.partition("/")
    # A build of this host (images.image_tag: "sb-<installation>/<slug>") is never pulled.
    return bool(slash) and first != "localhost" and not _BUILT_HERE.fullmatch(first)


_BUILT_HERE = re.compile(r"sb-[a-z0-9]{1,16}")

# await_health: how long it reads health at the boot pace, then how often after that.
AWAIT_FAST_SECONDS = 3.0
AWAIT_SLOW_SECONDS = 0.5


class SingleHostRuntime(Runtime):
    name = "single_host"

    def __init__(
        self,
        engine_url: str | None = None,
        *,
        state_dir: str,
        haproxy_bind: str = "127.0.0.1:8080",
        base_domain: str = "localhost",
        publish_host: str = "127.0.0.1",
        publish_ports: str = c.PUBLISH_PORTS_DEFAULT,
        start_engine: bool = False,
        haproxy_bin: str | None = None,
        stop_timeout: int = 5,
        pids_limit: int = 512,
        userns: str = "auto",
        instance: str = "local",
    ):
        """
        engine_url: Docker Engine API URL (default $DOCKER_HOST, else Podman's socket).
        state_dir: where HAProxy's config/sockets and probe counters live.
        haproxy_bind: the public HTTP listener; routes Host "<project>.<base_domain>".
        publish_host: host address replicas' ports are published on (HAProxy dials it).
        publish_ports: "low-high", the range those ports are picked from ("" lets the engine
            pick from the ephemeral range; see containers.publish_port_pick).
        start_engine: start `podman system service` at engine_url if nothing answers.
        pids_limit, userns: every replica's process limit and user namespace mode (see
            containers.ContainerLimits); memory and CPU come from each revision's spec.
        Each project's replicas join the project's own isolated network (networks.py).
        instance: this installation's id; its containers and HAProxy backends carry it, and
            nothing here lists, retires or stops another installation's containers.
        """
        if not re.fullmatch(r"[a-z0-9]{1,16}", instance):
            raise PermanentError(f"invalid installation id {instance!r}")
        self.instance = instance
        self.engine_url = engine_url
        self.state_dir = os.path.abspath(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.pids_limit = pids_limit
        self.userns = userns
        self.publish_host = publish_host
        try:
            self.publish_ports = c.publish_ports_parse(publish_ports)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        self.start_engine = start_engine
        self.stop_timeout = stop_timeout
        self.router = HAProxyRouter(self.state_dir, bind=haproxy_bind, base_domain=base_domain, haproxy_bin=haproxy_bin,
                                    instance=instance)
        self.probe_store = p.ProbeStore(self.state_dir)
        self._engine: EngineHandle | None = None
        self._engine_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------

    @property
    def client(self):
        """Connect lazily: building a runtime object must not need the engine."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = connect(self.engine_url, start_service=self.start_engine)
            return self._engine.client

    def close(self, *, stop_router: bool = False) -> None:
        """Release the engine connection (and the podman service if we started it)."""
        if self._engine is not None:
            self._engine.stop()
            self._engine = None
        if stop_router:
            self.router.stop()

    def route_url(self, project: str) -> tuple[str, str]:
        """(base URL of the HAProxy listener, Host header) that reach a project."""
        return f"http://{self.router.bind}", f"{project}.{self.router.base_domain}"

    # -- build ----------------------------------------------------------------------

    def build(self, *, spec: BuildSpec, log: LogSink) -> BuiltImage:
        known_hosts = os.path.join(self.state_dir, "known_hosts", check_slug(spec.project))
        built = build_image(self.client, spec, log, instance=self.instance, known_hosts=known_hosts)
        # Only after a build that worked (a failed one raised above): never evict a good image.
        if spec.keep_shas:
            try:
                for image_id in prune_images(self.client, spec.project, keep_shas={*spec.keep_shas, spec.sha},
                                             instance=self.instance):
                    log(f"pruned image {image_id[:19]} (no kept revision needs it)")
            except c.ENGINE_ERRORS as exc:
                # Housekeeping must not fail a built deployment: on a shared engine another
                # installation may remove an image of the same name while we list them.
                log(f"could not prune old images now: {exc}")
        return built

    # -- revisions ------------------------------------------------------------------

    def start_revision(self, *, spec: RevisionSpec) -> None:
        project = check_slug(spec.project)
        revision = _check_revision(spec.revision)
        image = find_image(self.client, spec.image)
        if image is None:
            image = self._pull(spec.image)
        built_for = (image.labels or {}).get(LABEL_PROJECT, "")
        if built_for and built_for != project:
            # Defence in depth behind the image_template policy: an image the platform
            # built for one project never runs as another's.
            raise PermanentError(f"image {spec.image} was built for another project; "
                                 "a project runs only its own images or images the operator allows")
        sha = spec.sha or image.labels.get(LABEL_SHA, "")
        labels = {
            c.LABEL_MANAGED: "1",
            c.LABEL_INSTANCE: self.instance,
            c.LABEL_PROJECT: project,
            c.LABEL_REVISION: revision,
            c.LABEL_REPLICAS: str(spec.replicas),
            c.LABEL_PORT: str(spec.port),
            c.LABEL_PROBES: p.probes_to_label(startup=spec.startup, readiness=spec.readiness, liveness=spec.liveness),
            c.LABEL_SHA: sha,
        }
        # Platform variables win over the project's env: PORT must match what we publish.
        env = {
            **spec.env,
            "PORT": str(spec.port),
            "SWITCHBACK_PROJECT": project,
            "SWITCHBACK_REVISION": revision,
            "SWITCHBACK_COMMIT": sha,
        }

        replicas = c.list_replicas(self.client, project, revision, instance=self.instance)
        existing = {c.replica_index(k): k for k in replicas}
        network = network_ensure(self.client, project=project, instance=self.instance)
        limits = c.ContainerLimits(memory_mb=spec.memory_mb, cpus=spec.cpus, pids_limit=self.pids_limit,
                                   userns=self.userns)

        def ensure_replica(index: int):
            container = existing.get(index)
            if container is not None and container.status != "running":
                # A cold revision: start the stopped container as it was (no create).
                container = c.start_existing(container)
                if container is None:
                    c.remove_container(existing[index], stop_timeout=0)  # cannot start: replace it
            if container is None:
                container = c.create_replica(
                    self.client,
                    image=spec.image,
                    name=c.container_name(project, revision, index, self.instance),
                    labels={**labels, c.LABEL_REPLICA: str(index)},
                    env=env,
                    port=spec.port,
                    publish_host=self.publish_host,
                    network=network,
                    limits=limits,
                    publish_ports=self.publish_ports,
                )
            return index, container

        # Replicas start in parallel: each engine start takes a few hundred milliseconds.
        with ThreadPoolExecutor(max_workers=min(8, max(1, spec.replicas))) as pool:
            started = list(pool.map(ensure_replica, range(spec.replicas)))
        servers = {}
        for index, container in started:
            existing.pop(index, None)
            hport = c.host_port(container, spec.port)
            if hport is None:
                raise TransientError(f"{container.name} has no published port {spec.port}")
            servers[server_name(revision, index)] = (self.publish_host, hport)
        # Register replicas with no traffic yet: a later switch is then only weights.
        self.router.sync_servers(project, revision, servers, check=_health_check(spec.readiness))
        for container in existing.values():  # scaled down: remove the extra replicas
            c.remove_container(container, stop_timeout=self.stop_timeout)

    def _pull(self, ref: str):
        if not pullable(ref):  # only ever built here
            raise PermanentError(f"image not found: {ref}")
        try:
            return self.client.images.pull(ref)
        except docker.errors.NotFound as exc:
            raise PermanentError(f"image not found: {ref}") from exc
        except c.ENGINE_ERRORS as exc:
            raise TransientError(f"could not pull {ref}: {exc}") from exc

    def is_warm(self, *, spec: RevisionSpec) -> bool:
        """Readiness of the servers the router already knows: no engine round trip.

        This is what makes a warm rollback only a weight change (tens of milliseconds);
        anything short of every known replica answering falls back to the full path.
        """
        servers = self.router.servers_of(spec.project, str(spec.revision))
        if len(servers) < spec.replicas:
            return False
        path = spec.readiness.path if spec.readiness else None
        timeout = spec.readiness.timeout_seconds if spec.readiness else 1.0

        def ready(addr: tuple[str, int]) -> bool:
            host, port = addr
            if path is None:
                return p.tcp_probe(host, port, timeout).ok
            return p.http_probe(host, port, path, timeout).ok

        if len(servers) == 1:  # the common case: no thread to start on the rollback's path
            return ready(next(iter(servers.values())))
        with ThreadPoolExecutor(max_workers=min(8, len(servers))) as pool:
            return all(pool.map(ready, servers.values()))

    def await_health(self, *, project: str, revision: str, timeout: float) -> RevisionHealth:
        """Wait up to ``timeout`` seconds for the revision to become READY or FAILED.

        Reads the health every BOOT_POLL_SECONDS for the first seconds (a booting replica is
        probed that often, so a cold start is seen at once), then every half second; the
        probes themselves run only when due.  The engine comes back after a probe period
        only when a start outlasts ``timeout``.
        """
        started = time.monotonic()
        while True:
            health = self.revision_health(project=project, revision=revision)
            waited = time.monotonic() - started
            if health.state != HealthState.STARTING or waited >= timeout:
                return health
            pause = BOOT_POLL_SECONDS if waited < AWAIT_FAST_SECONDS else AWAIT_SLOW_SECONDS
            time.sleep(min(pause, max(0.0, timeout - waited)))

    def revision_health(self, *, project: str, revision: str) -> RevisionHealth:
        replicas = c.list_replicas(self.client, project, revision, instance=self.instance)
        if not replicas:
            return RevisionHealth(HealthState.FAILED, message=f"revision {revision} of {project} is not running")
        wanted = max(int(k.labels.get(c.LABEL_REPLICAS, "1")) for k in replicas)
        counters = self.probe_store.load(project, revision)
        now = time.time()

        def judge(container):
            rp = counters.setdefault(container.id, p.ReplicaProbes(first_seen=now))
            return container, evaluate(
                container,
                port=int(container.labels.get(c.LABEL_PORT, "8000")),
                probes=p.probes_from_label(container.labels.get(c.LABEL_PROBES, "")),
                counters=rp,
                host=self.publish_host,
                now=now,
            )

        # Probe replicas in parallel: one call costs at most one probe timeout.
        with ThreadPoolExecutor(max_workers=min(8, len(replicas))) as pool:
            results = list(pool.map(judge, replicas))
        # Forget counters of containers that no longer exist.
        self.probe_store.save(project, revision, {k.id: counters[k.id] for k, _ in results})

        ready = sum(1 for _, h in results if h.ready)
        failed = [(k, h) for k, h in results if h.failed]
        if failed:
            k, h = failed[0]
            return RevisionHealth(HealthState.FAILED, ready, wanted, f"replica {c.replica_index(k)}: {h.failed}")
        if ready >= wanted:
            return RevisionHealth(HealthState.READY, ready, wanted)
        waiting = [(k, h) for k, h in results if not h.ready]
        msg = (
            f"replica {c.replica_index(waiting[0][0])}: {waiting[0][1].waiting}"
            if waiting
            else f"{len(replicas)} of {wanted} replicas exist"
        )
        return RevisionHealth(HealthState.STARTING, ready, wanted, msg)

    def check_liveness(self, *, project: str) -> list[LivenessFailure]:
        """Probe liveness of the project's replicas; restart those that failed.

        Returns one human message per restarted replica (for the event timeline).
        Crashed replicas are restarted too.
        """
        messages = []
        by_revision: dict[str, list] = {}
        # Only revisions the router serves or stands ready to serve: a retired (cold)
        # revision's containers are stopped on purpose and must stay stopped.
        routed = set(self.router.revisions_of(project).values())
        for container in c.list_replicas(self.client, project, instance=self.instance):
            revision = container.labels.get(c.LABEL_REVISION, "")
            if revision in routed:
                by_revision.setdefault(revision, []).append(container)
        for revision, replicas in by_revision.items():
            counters = self.probe_store.load(project, revision)
            for container in replicas:
                rp = counters.setdefault(container.id, p.ReplicaProbes(first_seen=time.time()))
                port = int(container.labels.get(c.LABEL_PORT, "8000"))
                if container.status in ("exited", "dead", "stopped"):
                    reason = c.exit_summary(container)
                else:
                    reason = liveness_failure(
                        container,
                        port=port,
                        host=self.publish_host,
                        probes=p.probes_from_label(container.labels.get(c.LABEL_PROBES, "")),
                        counters=rp,
                    )
                if not reason:
                    continue
                self._restart(project, revision, container, port)
                counters[container.id] = p.ReplicaProbes(first_seen=time.time())
                messages.append(LivenessFailure(
                    revision=revision, message=f"replica {c.replica_index(container)}: {reason}; restarted"))
            self.probe_store.save(project, revision, counters)
        return messages

    def _restart(self, project: str, revision: str, container, port: int) -> None:
        try:
            container.restart(timeout=self.stop_timeout)
            container.reload()
        except c.ENGINE_ERRORS as exc:
            raise TransientError(f"could not restart {container.name}: {exc}") from exc
        hport = c.host_port(container, port)
        name = server_name(revision, c.replica_index(container))
        if hport is not None and name in self.router.revisions_of(project):
            self.router.sync_servers(
                project, revision, {**self._revision_servers(project, revision), name: (self.publish_host, hport)}
            )

    def _revision_servers(self, project: str, revision: str) -> dict[str, tuple[str, int]]:
        """server name -> (host, port) of the revision's running replicas."""
        servers = {}
        for container in c.list_replicas(self.client, project, revision, instance=self.instance):
            hport = c.host_port(container, int(container.labels.get(c.LABEL_PORT, "8000")))
            if container.status == "running" and hport is not None:
                servers[server_name(revision, c.replica_index(container))] = (self.publish_host, hport)
        return servers

    # -- traffic --------------------------------------------------------------------

    def set_traffic(self, *, project: str, weights: Mapping[str, int],
                    routing: TrafficRouting | None = None) -> None:
        check_slug(project)
        weights = {_check_revision(str(r)): int(w) for r, w in weights.items()}
        if any(w < 0 or w > 100 for w in weights.values()) or sum(weights.values()) != 100:
            raise PermanentError(f"traffic weights must be 0..100 and sum to 100: {weights}")
        preview: str | object = KEEP
        rules: RouteRules | object = KEEP
        if routing is not None:
            try:
                rules = RouteRules(sticky=routing.sticky, header=routing.header,
                                   header_value=routing.header_value, cookie=routing.cookie)
            except ValueError as exc:
                raise PermanentError(str(exc)) from exc
            preview = _check_revision(routing.preview) if routing.preview else ""
        server_weights: dict[str, int] = {}
        for revision, percent in weights.items():
            if percent == 0:
                continue
            # Fast path (a warm rollback is only this): the router already knows the
            # revision's servers, registered by start_revision and kept current when a
            # replica is replaced.  Otherwise ask the engine and repair the router.
            servers = self.router.servers_of(project, revision)
            if not servers:
                servers = self._revision_servers(project, revision)
                if not servers:
                    raise PermanentError(f"revision {revision} of {project} has no running replicas to route to")
                self.router.sync_servers(project, revision, servers)
            per_server = split_weights(percent, len(servers))
            server_weights.update({name: per_server for name in servers})
        # New rules reload HAProxy (before the weights); the same rules cost nothing more.
        self.router.set_weights(project, server_weights, preview=preview, rules=rules)

    def retire_revision(self, *, project: str, revision: str, drain_seconds: float = 0) -> None:
        """Drain, then stop the replicas and keep them: a cold rollback starts them again."""
        for container in self._unroute(project, revision, drain_seconds):
            c.stop_container(container, stop_timeout=self.stop_timeout)
        self.probe_store.delete(project, revision)

    def discard_revision(self, *, project: str, revision: str) -> None:
        for container in self._unroute(project, revision, 0):
            c.remove_container(container, stop_timeout=self.stop_timeout)
        self.probe_store.delete(project, revision)
        self._network_release(project)

    def _unroute(self, project: str, revision: str, drain_seconds: float) -> list:
        revision = _check_revision(revision)
        replicas = c.list_replicas(self.client, project, revision, instance=self.instance)
        names = {n for n, r in self.router.revisions_of(project).items() if r == revision}
        names |= {server_name(revision, c.replica_index(k)) for k in replicas}
        self.router.remove_servers(project, sorted(names), drain_seconds=drain_seconds)
        return replicas

    def revisions_evict(self, *, project: str, keep: Collection[str]) -> list[str]:
        """Remove stopped revisions nobody keeps (their images can then be pruned)."""
        keep = {str(r) for r in keep}
        routed = set(self.router.revisions_of(project).values())
        by_revision: dict[str, list] = {}
        for container in c.list_replicas(self.client, project, instance=self.instance):
            by_revision.setdefault(container.labels.get(c.LABEL_REVISION, ""), []).append(container)
        evicted = []
        for revision, replicas in sorted(by_revision.items()):
            if revision in keep or revision in routed or any(k.status == "running" for k in replicas):
                continue
            for container in replicas:
                c.remove_container(container, stop_timeout=0)
            self.probe_store.delete(project, revision)
            evicted.append(revision)
        if evicted:
            self._network_release(project)
        return evicted

    def project_remove(self, *, project: str) -> list[str]:
        """Every revision (containers removed, not kept cold), the project's HAProxy backend
        and host mapping, its images and its network."""
        check_slug(project)
        removed = super().project_remove(project=project)
        for container in c.list_replicas(self.client, project, instance=self.instance):
            c.remove_container(container, stop_timeout=0)  # stopped ones observe() counted too
        if self.router.backend_remove(project):
            removed.append("route")
        pruned = prune_images(self.client, project, keep_shas=set(), instance=self.instance)
        removed += [f"image {image_id[:19]}" for image_id in pruned]
        self._network_release(project)
        return removed

    def _network_release(self, project: str) -> None:
        if not c.list_replicas(self.client, project, instance=self.instance):
            network_remove(self.client, project=project, instance=self.instance)  # the project's last replica is gone
        self._port_rules_tidy()

    def _port_rules_tidy(self) -> None:
        """After containers were removed: drop the port forwarding CNI left for them (see
        port_rules); housekeeping, so a failure is only logged."""
        try:
            # Ids only, in one engine call (containers.list would inspect each container).
            removed = stale_port_rules_remove(
                container_ids=lambda: [k["Id"] for k in self.client.api.containers(all=True, quiet=True)])
        except (OSError, subprocess.SubprocessError, *c.ENGINE_ERRORS) as exc:
            logger.warning("could not check for stale port forwarding rules: %s", exc)
            return
        if removed:
            logger.info("removed the port forwarding CNI left for removed container(s) %s", ", ".join(removed))

    def revisions_availability(self, *, project: str,
                               specs: Sequence[RevisionSpec]) -> dict[str, RevisionAvailability]:
        """Warm: every replica the router knows answers readiness.  Cold: the image is on
        this host (or its registry has it).  One engine round trip per image, at most."""
        answers = {}
        for spec in specs:
            if self.is_warm(spec=spec):
                answers[spec.revision] = RevisionAvailability(Availability.WARM)
                continue
            answers[spec.revision] = self._image_availability(spec.image)
        return answers

    def _image_availability(self, ref: str) -> RevisionAvailability:
        if not ref:
            return RevisionAvailability(Availability.UNAVAILABLE, "it has no image")
        try:
            if find_image(self.client, ref) is not None:
                return RevisionAvailability(Availability.COLD, "its image is on this host")
        except TransientError as exc:
            return RevisionAvailability(Availability.UNAVAILABLE, f"the container engine did not answer: {exc}")
        if not pullable(ref):
            return RevisionAvailability(Availability.UNAVAILABLE,
                                        f"its image {ref} was pruned from this host and no registry holds it")
        try:
            self.client.images.get_registry_data(ref)
        except docker.errors.NotFound:
            return RevisionAvailability(Availability.UNAVAILABLE, f"the registry no longer has {ref}")
        except c.ENGINE_ERRORS as exc:
            return RevisionAvailability(Availability.UNAVAILABLE, f"the registry is unreachable: {exc}")
        return RevisionAvailability(Availability.COLD, "its image will be pulled from the registry")

    # -- observation ----------------------------------------------------------------

    def adopt(self) -> list[str]:
        """HAProxy's servers and weights, read back and checked against the saved routes."""
        self.router.ensure_running()
        return self.router.adopt()

    def traffic(self, project: str) -> dict[str, int]:
        """revision -> percent of new requests HAProxy sends it now (from live weights)."""
        per_revision: dict[str, int] = {}
        for name, stats in self.router.server_stats(project).items():
            match = _SERVER.match(name)
            if match:
                rev = match["revision"]
                per_revision[rev] = per_revision.get(rev, 0) + stats["weight"]
        total = sum(per_revision.values())
        return {r: round(100 * w / total) if total else 0 for r, w in per_revision.items()}

    def traffic_counters(self, *, project: str) -> dict[str, TrafficCounters]:
        """revision -> HAProxy's own counters over its servers (the metric gates' source).

        The latency is HAProxy's per-server mean response time over the last 1024 requests
        (weighted by each server's requests): `show stat` keeps no percentiles, and it
        needs nothing beyond the Runtime API the router already drives.
        """
        totals: dict[str, list] = {}
        for name, counts in self.router.server_counters(project).items():
            match = _SERVER.match(name)
            if not match:
                continue
            t = totals.setdefault(match["revision"], [0, 0, 0.0, 0])
            t[0] += counts["requests"]
            t[1] += counts["errors"]
            if counts["requests"] and counts["rtime_ms"]:
                t[2] += counts["rtime_ms"] * counts["requests"]
                t[3] += counts["requests"]
        return {rev: TrafficCounters(requests=t[0], errors=t[1], latency_ms=(t[2] / t[3]) if t[3] else None,
                                     latency_label="mean of the last 1024")
                for rev, t in totals.items()}

    def observe(self, *, project: str | None = None) -> list[ObservedRevision]:
        found: dict[tuple[str, str], dict] = {}
        for container in c.list_replicas(self.client, project, instance=self.instance):
            key = (container.labels.get(c.LABEL_PROJECT, ""), container.labels.get(c.LABEL_REVISION, ""))
            entry = found.setdefault(key, {"image": "", "replicas": 0})
            entry["image"] = entry["image"] or (container.attrs.get("Config") or {}).get("Image", "")
            entry["replicas"] += container.status == "running"
        projects = {project} if project else ({k[0] for k in found} | set(self.router.load_state().projects))
        result = []
        for proj in sorted(projects):
            weights = self.traffic(proj)
            # Servers without containers still show up: the reconciler must see them.
            for rev in weights:
                found.setdefault((proj, rev), {"image": "", "replicas": 0})
            for (p_, rev), entry in sorted(found.items()):
                if p_ == proj:
                    result.append(
                        ObservedRevision(
                            project=proj,
                            revision=rev,
                            image=entry["image"],
                            replicas=entry["replicas"],
                            weight=weights.get(rev, 0),
                        )
                    )
        return result
