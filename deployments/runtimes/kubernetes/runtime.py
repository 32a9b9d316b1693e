"""The Kubernetes runtime: a Deployment per revision, a stable Service for instant
switches, and HTTPRoute weights or ingress-nginx canary annotations for splits."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from deployments.errors import PermanentError, TransientError
from deployments.sources import dockerfile_path_check

from ..base import (
    BuildSpec,
    BuiltImage,
    HealthState,
    LogSink,
    ObservedRevision,
    RevisionHealth,
    RevisionSpec,
    Runtime,
    TrafficRouting,
)
from ..image_ref import image_ref_format
from . import health
from . import manifests as m
from .client import KubeClient, WatchExpired

T = TypeVar("T")


# How long a revision seen ready by is_warm counts as confirmed for the switch that follows.
WARM_CONFIRMATION_SECONDS = 2.0


class KubernetesRuntime(Runtime):
    """Runs revisions in one namespace.

    build_mode "prebuilt" formats ``image_template`` (keys: project, sha, short_sha,
    registry), e.g. "registry.example.com/team/app:{sha}", for images CI already pushed;
    "in_cluster" builds with a Kaniko Job (Chainguard's maintained fork) fetching the
    project's branch at the commit, and pushes to ``registry``.
    """

    name = "kubernetes"

    def __init__(
        self,
        *,
        client: KubeClient | None = None,
        namespace: str = "default",
        host: str = "",
        kubeconfig: str = "",
        context: str = "",
        in_cluster: bool = False,
        build_mode: str = "prebuilt",
        image_template: str = "{project}:{sha}",
        registry: str = "",
        executor_image: str = m.KANIKO_IMAGE,
        registry_secret: str = "",
        build_timeout: float = 1800,
        default_options: m.ProjectOptions | None = None,
        projects: Mapping[str, m.ProjectOptions] | None = None,
        keep_revisions: int = 3,
        progress_deadline_seconds: int = 600,
    ):
        if build_mode not in ("prebuilt", "in_cluster"):
            raise ValueError(f"build_mode must be 'prebuilt' or 'in_cluster', not {build_mode!r}")
        self.kube = client or KubeClient(
            namespace=namespace,
            host=host,
            kubeconfig=kubeconfig,
            context=context,
            in_cluster=in_cluster,
        )
        self.namespace = self.kube.namespace
        self.build_mode, self.image_template, self.registry = build_mode, image_template, registry
        self.executor_image, self.registry_secret = executor_image, registry_secret
        self.build_timeout = build_timeout
        self.default_options = default_options or m.ProjectOptions()
        # Any Mapping works: the platform passes one that reads each project's router from the database.
        self.projects = projects if projects is not None else {}
        self.keep_revisions = keep_revisions
        self._confirmed_warm: dict[tuple[str, str], float] = {}
        self.progress_deadline_seconds = progress_deadline_seconds

    def configure_project(self, project: str, options: m.ProjectOptions) -> None:
        self.projects = {**self.projects, project: options}

    def options_for(self, project: str) -> m.ProjectOptions:
        return self.projects.get(project, self.default_options)

    # --- build ------------------------------------------------------------------------
    def build(self, *, spec: BuildSpec, log: LogSink) -> BuiltImage:
        if self.build_mode == "prebuilt":
            ref = image_ref_format(self.image_template, project=spec.project, sha=spec.sha,
                                   registry=spec.registry or self.registry)
            log(f"using the image CI built: {ref}")
            return BuiltImage(ref=ref, reused=True)
        return self._build_in_cluster(spec, log)

    def _build_in_cluster(self, spec: BuildSpec, log: LogSink) -> BuiltImage:
        spec = dataclasses.replace(spec, registry=spec.registry or self.registry)
        if not spec.registry:
            raise PermanentError("in-cluster builds need a registry to push to")
        # Kaniko resolves the build file inside its own pod, but a path out of the context is
        # refused here as on one host.
        dockerfile_path_check(spec.dockerfile)
        if spec.credential is not None and spec.credential.secrets():
            # Kaniko would need the token in the Job's environment, readable by whoever reads
            # Jobs in the namespace; private repositories build in CI for now (prebuilt images).
            raise PermanentError("in-cluster builds cannot use a project's deploy credential yet; build the "
                                 "image in CI and deploy it prebuilt (KUBE_BUILD_MODE=prebuilt).")
        try:
            job = m.build_job(
                spec,
                namespace=self.namespace,
                executor_image=self.executor_image,
                registry_secret=self.registry_secret,
            )
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        name = job["metadata"]["name"]
        existing = self.kube.get("Job", name)
        reused = existing is not None and _job_outcome(existing) == "Complete"
        if existing is not None and _job_outcome(existing) == "Failed":
            self.kube.delete("Job", name)  # a new attempt after a failed build
            existing = None
        if existing is None:
            log(f"building {spec.sha[:12]} in cluster (Job {name})")
            self.kube.apply(job)
        deadline = time.monotonic() + self.build_timeout
        pod_sel = f"job-name={name}"
        pod = self._wait_for(
            "Pod",
            deadline,
            lambda pods: next(
                (
                    p
                    for p in pods
                    if (p.get("status") or {}).get("phase") not in (None, "Pending") or health.pod_failure(p)
                ),
                None,
            ),
            selector=pod_sel,
        )
        if pod is None:
            raise TransientError(f"build Job {name} did not start within {self.build_timeout}s")
        if why := health.pod_failure(pod):  # e.g. the executor image cannot be pulled
            raise PermanentError(f"build of {spec.sha[:12]} cannot run: {why}")
        if not reused:
            for line in self.kube.pod_log(pod["metadata"]["name"], follow=True):
                log(line)
        done = self._wait_for(
            "Job",
            deadline,
            lambda jobs: next((j for j in jobs if _job_outcome(j)), None),
            field=f"metadata.name={name}",
        )
        if done is None:
            raise TransientError(f"build Job {name} did not finish within {self.build_timeout}s")
        if _job_outcome(done) == "Failed":
            cond = next(c for c in done["status"]["conditions"] if c["type"] == "Failed")
            raise PermanentError(
                f"build of {spec.sha[:12]} failed ({cond.get('reason', '')}): see the build log; Job {name}"
            )
        pods, _ = self.kube.list("Pod", selector=pod_sel)
        digest = next(
            (
                cs["state"]["terminated"].get("message", "").strip()
                for p in pods
                for cs in (p.get("status") or {}).get("containerStatuses") or []
                if "terminated" in (cs.get("state") or {})
            ),
            "",
        )
        repo = m.image_ref(spec.registry, spec.project, spec.sha).rsplit(":", 1)[0]
        ref = f"{repo}@{digest}" if digest.startswith("sha256:") else f"{repo}:{spec.sha}"
        log(f"built {ref}")
        return BuiltImage(ref=ref, digest=digest, reused=reused)

    # --- revisions ------------------------------------------------------------------------
    def start_revision(self, *, spec: RevisionSpec) -> None:
        """Apply env Secret, Deployment (its replicas scale a cold revision back up) and
        the revision's Service."""
        opts = self.options_for(spec.project)
        self.kube.apply(m.env_secret(spec, namespace=self.namespace))
        self.kube.apply(
            m.revision_deployment(
                spec,
                namespace=self.namespace,
                resources=opts.resources,
                progress_deadline_seconds=self.progress_deadline_seconds,
            )
        )
        self.kube.apply(
            m.revision_service(spec.project, spec.revision, namespace=self.namespace, port=opts.service_port)
        )

    def revision_health(self, *, project: str, revision: str) -> RevisionHealth:
        deployment = self.kube.get("Deployment", m.revision_name(project, revision))
        pods, _ = self.kube.list("Pod", selector=_selector(m.revision_selector(project, revision)))
        result = health.assess(project, revision, deployment, pods)
        if result.state is HealthState.FAILED and "not ready within" in result.message:
            result = health.assess(project, revision, deployment, pods, self._probe_failure(pods))
        return result

    def is_warm(self, *, spec: RevisionSpec) -> bool:
        warm = super().is_warm(spec=spec)
        if warm:
            self._confirmed_warm[(spec.project, str(spec.revision))] = time.monotonic()
        return warm

    def await_health(self, *, project: str, revision: str, timeout: float) -> RevisionHealth:
        """The engine's verify step: watch for up to ``timeout`` seconds; still starting
        at the end is STARTING (the engine owns the overall deadline)."""
        return self.wait_ready(project=project, revision=revision, timeout=timeout, give_up=False)

    def wait_ready(self, *, project: str, revision: str, timeout: float | None = None,
                   give_up: bool = True) -> RevisionHealth:
        """Block until the revision is READY or FAILED, watching (not polling) its pods
        and Deployment; give up with FAILED after ``timeout`` (default: the progress
        deadline), or report STARTING then when ``give_up`` is false."""
        limit = timeout if timeout is not None else self.progress_deadline_seconds
        deadline = time.monotonic() + limit
        name, sel = m.revision_name(project, revision), m.revision_selector(project, revision)
        while True:
            result = self.revision_health(project=project, revision=revision)
            if result.state is not HealthState.STARTING or result.replicas == 0:
                return result
            if time.monotonic() >= deadline:
                break
            # Pods show failures and readiness first; the Deployment's status follows.
            # Watch whichever still has news to come.
            pods, _ = self.kube.list("Pod", selector=_selector(sel))
            seen = health.pods_ready(pods)
            if seen >= result.replicas:
                self._wait_for(
                    "Deployment",
                    deadline,
                    lambda ds: (
                        True
                        if ds and health.assess(project, revision, ds[0], []).state is not HealthState.STARTING
                        else None
                    ),
                    field=f"metadata.name={name}",
                )
            else:
                self._wait_for(
                    "Pod",
                    deadline,
                    lambda ps, seen=seen: (
                        True if any(health.pod_failure(p) for p in ps) or health.pods_ready(ps) != seen else None
                    ),
                    selector=_selector(sel),
                )
        final = self.revision_health(project=project, revision=revision)
        if final.state is not HealthState.STARTING or not give_up:
            return final
        pods, _ = self.kube.list("Pod", selector=_selector(sel))
        why = self._probe_failure(pods)
        return RevisionHealth(
            HealthState.FAILED,
            final.ready_replicas,
            final.replicas,
            f"not ready within {limit:g}s ({final.ready_replicas}/"
            f"{final.replicas} replicas ready)" + (f"; {why}" if why else ""),
        )

    def _probe_failure(self, pods: list[dict]) -> str:
        names = {p["metadata"]["name"] for p in pods}
        if not names:
            return ""
        events, _ = self.kube.list("Event", field_selector="reason=Unhealthy")
        return health.probe_failure(events, names)

    def _wait_for(
        self,
        kind: str,
        deadline: float,
        check: Callable[[list[dict]], T | None],
        *,
        selector: str = "",
        field: str = "",
    ) -> T | None:
        """List, then watch until ``check(current objects)`` returns something, or the
        deadline passes.  An expired watch (410) lists again."""
        while time.monotonic() < deadline:
            items, rv = self.kube.list(kind, selector=selector, field_selector=field)
            if (found := check(items)) is not None:
                return found
            cache = {o["metadata"]["name"]: o for o in items}
            try:
                while (remaining := deadline - time.monotonic()) > 0:
                    for event, obj in self.kube.watch(
                        kind,
                        resource_version=rv,
                        timeout=min(remaining, 60),
                        selector=selector,
                        field_selector=field,
                    ):
                        if event == "ERROR":
                            raise WatchExpired(f"watch {kind}: {obj.get('message')}")
                        rv = obj["metadata"].get("resourceVersion", rv)
                        if event == "DELETED":
                            cache.pop(obj["metadata"]["name"], None)
                        elif event in ("ADDED", "MODIFIED"):
                            cache[obj["metadata"]["name"]] = obj
                        if (found := check(list(cache.values()))) is not None:
                            return found
            except WatchExpired:
                continue  # the history we watched from is gone: list again
        return None

    # --- traffic ----------------------------------------------------------------------------
    def set_traffic(self, *, project: str, weights: Mapping[str, int],
                    routing: TrafficRouting | None = None) -> None:
        weights = {str(r): int(w) for r, w in weights.items()}
        if any(not 0 <= w <= 100 for w in weights.values()) or sum(weights.values()) != 100:
            raise PermanentError(f"traffic weights must be 0..100 and sum to 100, got {weights}")
        active = {r: w for r, w in weights.items() if w > 0}
        for rev in active:
            if time.monotonic() - self._confirmed_warm.get((project, rev), -1e9) < WARM_CONFIRMATION_SECONDS:
                continue  # is_warm just saw it ready (a warm rollback): no second read
            if self.kube.get("Deployment", m.revision_name(project, rev)) is None:
                raise PermanentError(f"cannot route to {project} r{rev}: it is not running")
        opts = self.options_for(project)
        if len(active) == 1:
            (target,) = active
        elif opts.router == "service":
            raise PermanentError(
                f"{project} uses a plain Service, which cannot split traffic; "
                "choose the 'gateway' or 'nginx' router for weighted rollouts"
            )
        elif opts.router == "nginx" and len(active) > 2:
            raise PermanentError("ingress-nginx canaries split traffic between two revisions only")
        else:
            live = self._live_revision(project)  # only a split needs to know who is stable
            target = live if live in active else max(active, key=lambda r: active[r])
        # Sticky clients on Gateway API are pinned per step: the next step needs the weights of
        # this one (see manifests.http_route).
        previous = (self.current_weights(project) if routing is not None and routing.sticky
                    and opts.router == "gateway" else None)
        objs = m.traffic_objects(project, namespace=self.namespace, options=opts, weights=weights, live_revision=target,
                                 routing=routing, previous=previous)
        if opts.router == "nginx" and set(weights) == {target}:
            # Only one revision named: keep the canary Ingress on its backend, at 0.
            current = self.kube.get("Ingress", m.canary_ingress_name(project))
            if current is not None:
                objs[-1] = m.canary_ingress(
                    project,
                    namespace=self.namespace,
                    weight=0,
                    revision=current["metadata"]["labels"][m.LABEL_REVISION],
                    host=opts.hostnames[0] if opts.hostnames else "",
                    port=opts.service_port,
                    ingress_class=opts.ingress_class,
                    **m.canary_routing(routing or (TrafficRouting(header=opts.canary_header)
                                                   if opts.canary_header else None)),
                )
        for obj in objs:  # stable Service first: the instant switch
            self.kube.apply(obj)

    def metric_labels(self, *, project: str, revision: str) -> dict[str, str]:
        """What Prometheus knows the revision's traffic by: the per-revision Service the
        HTTPRoute or the canary Ingress sends it through, in this namespace."""
        opts = self.options_for(project)
        service, ingress = m.revision_name(project, revision), project
        if opts.router == "nginx":
            # The stable Ingress sends the live revision's share through the stable Service;
            # the canary Ingress sends the rest through the revision's own.
            if revision == self._live_revision(project):
                service = project
            else:
                ingress = m.canary_ingress_name(project)
        return {"namespace": self.namespace, "service": service, "ingress": ingress, "route": project,
                "router": opts.router}

    def _live_revision(self, project: str) -> str | None:
        svc = self.kube.get("Service", project)
        return ((svc or {}).get("spec") or {}).get("selector", {}).get(m.LABEL_REVISION)

    def current_weights(self, project: str) -> dict[str, int]:
        """Share of traffic (0..100) per revision, as the cluster routes it now."""
        live, router = self._live_revision(project), self.options_for(project).router
        weights = {live: 100} if live else {}
        if router == "gateway" and (route := self.kube.get("HTTPRoute", project)):
            # The weighted rule is the one matching no header (the others route a header,
            # a cookie or a sticky client).
            rules = [r for r in route["spec"].get("rules", [])
                     if not any(match.get("headers") for match in r.get("matches", []))]
            refs = [b for rule in rules[-1:] for b in rule.get("backendRefs", [])]
            total = sum(b.get("weight", 1) for b in refs) or 1
            prefix = f"{project}-r"
            weights = {
                b["name"].removeprefix(prefix): round(100 * b.get("weight", 1) / total)
                for b in refs
                if b["name"].startswith(prefix)
            }
        elif router == "nginx" and live and (canary := self.kube.get("Ingress", m.canary_ingress_name(project))):
            rev = canary["metadata"]["labels"].get(m.LABEL_REVISION)
            w = int(canary["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/canary-weight", "0"))
            if rev and rev != live and w:
                weights = {live: 100 - w, rev: w}
        return weights

    # --- retiring ------------------------------------------------------------------------------
    def retire_revision(self, *, project: str, revision: str, drain_seconds: float = 0) -> None:
        weight = self.current_weights(project).get(str(revision), 0)
        if weight:
            raise PermanentError(
                f"{project} r{revision} still receives {weight}% of traffic; route it elsewhere before retiring it"
            )
        # No waiting here: each pod drains itself (its preStop pause of the project's
        # drain_seconds, built into the revision's Deployment, then SIGTERM within the
        # grace period), while endpoints follow the selector change.
        self.scale_to_zero(project=project, revision=revision)

    def scale_to_zero(self, *, project: str, revision: str) -> None:
        """Keep the Deployment (a cold rollback target) with no pods.  Which cold revisions
        stay is the platform's kept set (`revisions_evict`), not a count here."""
        name = m.revision_name(project, revision)
        if self.kube.get("Deployment", name) is not None:
            self.kube.scale(name, 0)

    def revisions_evict(self, *, project: str, keep) -> list[str]:
        """Delete the project's scaled-to-zero revisions not in ``keep``; never one that
        serves traffic or runs pods."""
        keep = {str(r) for r in keep}
        routed = {r for r, w in self.current_weights(project).items() if w}
        deploys, _ = self.kube.list("Deployment", selector=_selector(m.project_labels(project)))
        evicted = []
        for d in deploys:
            rev = d["metadata"]["labels"].get(m.LABEL_REVISION, "")
            if d["spec"].get("replicas", 1) == 0 and rev not in routed and rev not in keep:
                self.delete_revision(project=project, revision=rev)
                evicted.append(rev)
        return sorted(evicted, key=m._rev_key)

    def prune(self, *, project: str, keep: int | None = None) -> list[str]:
        """Delete cold revisions beyond the newest ``keep`` (default keep_revisions),
        never one that serves traffic or runs pods.  Returns the revisions deleted."""
        keep = self.keep_revisions if keep is None else keep
        routed = {r for r, w in self.current_weights(project).items() if w}
        deploys, _ = self.kube.list("Deployment", selector=_selector(m.project_labels(project)))
        cold = [
            d
            for d in deploys
            if d["spec"].get("replicas", 1) == 0 and d["metadata"]["labels"].get(m.LABEL_REVISION) not in routed
        ]
        cold.sort(key=lambda d: m._rev_key(d["metadata"]["labels"][m.LABEL_REVISION]), reverse=True)
        deleted = []
        for d in cold[keep:]:
            rev = d["metadata"]["labels"][m.LABEL_REVISION]
            self.delete_revision(project=project, revision=rev)
            deleted.append(rev)
        return deleted

    def discard_revision(self, *, project: str, revision: str) -> None:
        """A failed rollout leaves nothing behind: delete rather than keep at zero."""
        self.delete_revision(project=project, revision=revision)

    def delete_revision(self, *, project: str, revision: str) -> None:
        name = m.revision_name(project, revision)
        self.kube.delete("Deployment", name)
        self.kube.delete("Service", name)
        self.kube.delete("Secret", m.env_secret_name(project, revision))

    # --- observing ------------------------------------------------------------------------------
    def observe(self, *, project: str | None = None) -> list[ObservedRevision]:
        labels = {m.LABEL_MANAGED_BY: m.MANAGER, **({m.LABEL_NAME: project} if project else {})}
        deploys, _ = self.kube.list("Deployment", selector=_selector(labels))
        weights: dict[str, dict[str, int]] = {}
        out = []
        for d in deploys:
            meta = d["metadata"]
            proj, rev = meta["labels"][m.LABEL_NAME], meta["labels"].get(m.LABEL_REVISION, "")
            if proj not in weights:
                weights[proj] = self.current_weights(proj)
            containers = d["spec"]["template"]["spec"]["containers"]
            out.append(
                ObservedRevision(
                    project=proj,
                    revision=rev,
                    image=containers[0].get("image", ""),
                    replicas=(d.get("status") or {}).get("readyReplicas") or 0,
                    weight=weights[proj].get(rev, 0),
                )
            )
        return sorted(out, key=lambda o: (o.project, m._rev_key(o.revision)))


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _job_outcome(job: dict) -> str:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return ""
