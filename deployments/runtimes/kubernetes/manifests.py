"""Pure functions from Switchback's specs to Kubernetes objects (plain dicts).

Nothing here talks to a cluster, so every object can be validated offline and printed
for a dry run (``render_manifests``).

Naming: revision N of project P runs as Deployment ``P-rN`` behind Service ``P-rN``;
the stable Service ``P`` selects the live revision's pods, so a switch is one selector
change (the blue-green pattern of
https://kubernetes.io/docs/concepts/services-networking/service/#defining-a-service).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from ..base import STICKY_COOKIE, BuildSpec, Probe, RevisionSpec, TrafficRouting

# https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_REVISION = "switchback.dev/revision"
MANAGER = "switchback"
CONTAINER = "app"
PORT_NAME = "http"

ROUTERS = ("service", "gateway", "nginx")
# What an app container may do: nothing beyond running its process (the single-host
# runtime's cap_drop ALL and no-new-privileges).  runAsNonRoot is not set: it refuses every
# image whose USER is root (the sample apps' busybox among them); see docs/security.md.
# https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
APP_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY_CONTEXT = {"seccompProfile": {"type": "RuntimeDefault"}}
# Google archived Kaniko in 2025; Chainguard maintains the fork (same flags, same image
# layout).  Its free tier publishes `latest` only: pin a digest with KUBE_BUILD_EXECUTOR_IMAGE.
# Why this and not BuildKit rootless: docs/kubernetes.md ("The build executor").
KANIKO_IMAGE = "cgr.dev/chainguard/kaniko:latest"
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,255}(?<![./])$")


@dataclass(frozen=True)
class ProjectOptions:
    """How one project is exposed and sized on Kubernetes.

    router: "service" (stable Service only, instant switches, no split), "gateway"
    (Gateway API HTTPRoute weights) or "nginx" (ingress-nginx canary annotations).
    """

    router: str = "service"
    hostnames: tuple[str, ...] = ()
    resources: Mapping | None = None  # None: from the revision's memory_mb and cpus
    parent_refs: tuple[Mapping, ...] = ({"name": "switchback", "namespace": "switchback"},)
    ingress_class: str = "nginx"
    canary_header: str = ""  # ingress-nginx: a request with this header set to "always" goes
    service_port: int = 80  # to the canary (canary-by-header)

    def __post_init__(self):
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {', '.join(ROUTERS)}, not {self.router!r}")


# --- names and labels ---------------------------------------------------------------
def revision_name(project: str, revision: str) -> str:
    return f"{project}-r{revision}"


def env_secret_name(project: str, revision: str) -> str:
    # One Secret per revision: a rollback runs with exactly the env it was deployed with.
    return f"{project}-r{revision}-env"


def canary_ingress_name(project: str) -> str:
    return f"{project}-canary"


def project_labels(project: str) -> dict[str, str]:
    return {LABEL_NAME: project, LABEL_MANAGED_BY: MANAGER}


def revision_selector(project: str, revision: str) -> dict[str, str]:
    return {LABEL_NAME: project, LABEL_REVISION: str(revision)}


def _meta(name: str, namespace: str, labels: Mapping, annotations: Mapping | None = None):
    meta = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


# --- the revision -----------------------------------------------------------------------
def _probe(probe: Probe, *, allow_success_threshold: bool = True) -> dict:
    # The API counts whole seconds (minimum 1) and only readiness may use a
    # successThreshold above 1:
    # https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes
    return {
        "httpGet": {"path": probe.path, "port": PORT_NAME},
        "periodSeconds": max(1, math.ceil(probe.period_seconds)),
        "timeoutSeconds": max(1, math.ceil(probe.timeout_seconds)),
        "failureThreshold": max(1, probe.failure_threshold),
        "successThreshold": max(1, probe.success_threshold) if allow_success_threshold else 1,
        "initialDelaySeconds": max(0, math.ceil(probe.initial_delay_seconds)),
    }


def env_secret(spec: RevisionSpec, *, namespace: str) -> dict:
    labels = {**project_labels(spec.project), LABEL_REVISION: str(spec.revision)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(env_secret_name(spec.project, spec.revision), namespace, labels),
        "type": "Opaque",
        "stringData": {k: str(v) for k, v in sorted(spec.env.items())},
    }


def revision_resources(spec: RevisionSpec) -> dict:
    """Requests and limits from the project's per-replica limits (memory_mb, cpus).

    Requests stay small (at most the old defaults) so a revision still schedules beside the
    live one on a small cluster; the limits are what the project asked for.
    """
    memory, millicpu = int(spec.memory_mb), max(1, round(spec.cpus * 1000))
    return {
        "requests": {"cpu": f"{min(50, millicpu)}m", "memory": f"{min(64, memory)}Mi"},
        "limits": {"cpu": f"{millicpu}m", "memory": f"{memory}Mi"},
    }


# Time the app itself gets after the drain to stop on SIGTERM (Kubernetes' default grace).
APP_STOP_SECONDS = 30


def drain_spec(container: dict, drain_seconds: float) -> dict:
    """Draining belongs to Kubernetes: a pod taken out of the Service keeps serving for the
    drain (a preStop pause, while endpoints and routers catch up), then gets SIGTERM; the
    grace period covers both.  The `sleep` handler needs no `sleep` binary in the app's
    image; it is beta and on by default since Kubernetes 1.30 (schemas 1.30-1.37 accept
    it): https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/#hook-handler-implementations
    Adds the hook to ``container``; returns the pod spec's part.
    """
    seconds = math.ceil(max(0.0, drain_seconds))
    if seconds:  # sleep 0 is refused before 1.32: no hook at all instead
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": seconds}}}
    return {"terminationGracePeriodSeconds": seconds + APP_STOP_SECONDS}


def revision_deployment(
    spec: RevisionSpec,
    *,
    namespace: str,
    resources: Mapping | None = None,
    progress_deadline_seconds: int = 600,
    service_account: str = "",
) -> dict:
    name = revision_name(spec.project, spec.revision)
    selector = revision_selector(spec.project, spec.revision)
    labels = {**project_labels(spec.project), **selector}
    commit = spec.sha[:12] or "unknown"
    # change-cause is what `kubectl rollout history` shows for the object.
    annotations = {"kubernetes.io/change-cause": f"switchback: deploy {commit} as r{spec.revision}"}
    container = {
        "name": CONTAINER,
        "image": spec.image,
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "envFrom": [{"secretRef": {"name": env_secret_name(spec.project, spec.revision)}}],
        "env": [
            {"name": "PORT", "value": str(spec.port)},
            {"name": "SWITCHBACK_REVISION", "value": str(spec.revision)},
        ],
        "resources": dict(resources if resources is not None else revision_resources(spec)),
        "securityContext": APP_SECURITY_CONTEXT,
    }
    if spec.startup:
        container["startupProbe"] = _probe(spec.startup, allow_success_threshold=False)
    if spec.readiness:
        container["readinessProbe"] = _probe(spec.readiness)
    if spec.liveness:
        container["livenessProbe"] = _probe(spec.liveness, allow_success_threshold=False)
    pod_spec: dict = {
        "containers": [container],
        "securityContext": POD_SECURITY_CONTEXT,
        # An app has no business with the Kubernetes API: no token unless the operator
        # names a ServiceAccount for it.
        "automountServiceAccountToken": bool(service_account),
        **drain_spec(container, spec.drain_seconds),
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, labels, annotations),
        "spec": {
            "replicas": spec.replicas,
            # Includes the revision, so each Deployment owns only its own pods; the
            # selector is immutable after creation.
            "selector": {"matchLabels": selector},
            # Past this the Deployment reports Progressing=False/ProgressDeadlineExceeded:
            # https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#failed-deployment
            "progressDeadlineSeconds": progress_deadline_seconds,
            "revisionHistoryLimit": 2,  # history is ours: one Deployment per revision
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _service(name: str, namespace: str, labels: Mapping, selector: Mapping, port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def revision_service(project: str, revision: str, *, namespace: str, port: int = 80) -> dict:
    """A Service per revision: what weighted routers (HTTPRoute, canary Ingress) point at."""
    labels = {**project_labels(project), LABEL_REVISION: str(revision), LABEL_COMPONENT: "revision"}
    return _service(
        revision_name(project, revision),
        namespace,
        labels,
        revision_selector(project, revision),
        port,
    )


def stable_service(project: str, *, namespace: str, live_revision: str, port: int = 80) -> dict:
    """The project's Service; its selector names the live revision (instant switch)."""
    labels = {**project_labels(project), LABEL_COMPONENT: "stable"}
    return _service(project, namespace, labels, revision_selector(project, live_revision), port)


# --- weighted routing -----------------------------------------------------------------
def _by_revision(weights: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(((str(r), int(w)) for r, w in weights.items()), key=lambda rw: _rev_key(rw[0]))


def _rev_key(revision: str):
    return (0, int(revision), "") if str(revision).isdigit() else (1, 0, str(revision))


def http_route(
    project: str,
    *,
    namespace: str,
    weights: Mapping[str, int],
    hostnames: Sequence[str] = (),
    parent_refs: Sequence[Mapping] = ProjectOptions().parent_refs,
    port: int = 80,
    routing: TrafficRouting | None = None,
    live_revision: str = "",
    previous: Mapping[str, int] | None = None,
) -> dict:
    """Gateway API HTTPRoute splitting by weight across per-revision Services.

    https://gateway-api.sigs.k8s.io/guides/traffic-splitting/

    With ``routing`` (all in the standard channel, no experimental field):
    - a header match (Core) and a cookie match (a RegularExpression match on the Cookie
      header: implementation-specific support) send requests to ``routing.preview``;
    - sticky: every response sets ``sb_rev=<revision>-<its weight>`` (ResponseHeaderModifier
      on each backendRef), and cookie rules send a client back to its revision: a canary
      client whatever the weight, a stable client while the weights hold.  When the canary
      grows, stable clients of the previous step draw again with the conditional weight
      (new - old) / (100 - old), so the share of clients keeps following the weights.
    Within a route, the first of equally specific matching rules wins
    (https://gateway-api.sigs.k8s.io/reference/spec/#httprouterule): preview rules first.
    """
    by_rev = _by_revision(weights)
    preview = str(routing.preview) if routing is not None and routing.preview else ""
    active = [(r, w) for r, w in by_rev if w > 0]
    sticky = routing is not None and routing.sticky and len(active) > 1

    def ref(rev: str, weight: int) -> dict:
        backend = {"group": "", "kind": "Service", "name": revision_name(project, rev), "port": port, "weight": weight}
        if sticky:
            cookie = (f"{STICKY_COOKIE}={_sticky_value(rev, dict(by_rev).get(rev, 0))}; Path=/; "
                      f"Max-Age={STICKY_MAX_AGE}; HttpOnly; SameSite=Lax")
            backend["filters"] = [{"type": "ResponseHeaderModifier",
                                   "responseHeaderModifier": {"set": [{"name": "Set-Cookie", "value": cookie}]}}]
        return backend

    def rule(headers: list[dict] | None, refs: list[dict]) -> dict:
        match: dict = {"path": {"type": "PathPrefix", "value": "/"}}
        if headers:
            match["headers"] = headers
        return {"matches": [match], "backendRefs": refs}

    rules = []
    if preview and preview != str(live_revision) and routing is not None:
        if routing.header:
            rules.append(rule([{"type": "Exact", "name": routing.header, "value": routing.header_value}],
                              [ref(preview, 1)]))
        if routing.cookie:
            rules.append(rule([_cookie_match(routing.cookie, "always")], [ref(preview, 1)]))
    if sticky:
        for rev, weight in active:
            value = f"{_re(rev)}-[0-9]+" if rev != str(live_revision) else _re(_sticky_value(rev, weight))
            rules.append(rule([_cookie_match(STICKY_COOKIE, value, literal=False)], [ref(rev, 1)]))
        stale = _stale_stable_split(by_rev, str(live_revision), previous)
        if stale is not None:
            old_value, split = stale
            rules.append(rule([_cookie_match(STICKY_COOKIE, old_value, literal=False)],
                              [ref(r, w) for r, w in split]))
    rules.append(rule(None, [ref(rev, weight) for rev, weight in by_rev]))
    spec: dict = {"parentRefs": [dict(ref) for ref in parent_refs], "rules": rules}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(project, namespace, project_labels(project)),
        "spec": spec,
    }


STICKY_MAX_AGE = 30 * 86400


def _sticky_value(revision: str, weight: int) -> str:
    return f"{revision}-{int(weight)}"


def _re(text: str) -> str:
    # Names and revisions are checked tokens ([A-Za-z0-9_.-]): only '.' is special in a regex.
    return text.replace(".", "\\.")


def _cookie_match(name: str, value: str, *, literal: bool = True) -> dict:
    value = _re(value) if literal else value
    return {"type": "RegularExpression", "name": "Cookie", "value": f"(^|;\\s*){_re(name)}={value}(;|$)"}


def _stale_stable_split(by_rev, live: str, previous: Mapping[str, int] | None):
    """Stable clients pinned at the previous step's weight, when the canary grew: they draw
    again with the conditional weights (Gateway API weights are relative: the stable's new
    weight against each canary's gain), so the share of clients follows the new weights."""
    if not previous:
        return None
    now, before = dict(by_rev), {str(r): int(w) for r, w in previous.items()}
    old_stable, new_stable = before.get(live, 0), now.get(live, 0)
    if not 0 < new_stable < old_stable:
        return None
    gains = {r: w - before.get(r, 0) for r, w in now.items() if r != live and w > before.get(r, 0)}
    if not gains:
        return None
    split = [(live, new_stable)] + sorted(gains.items(), key=lambda rw: _rev_key(rw[0]))
    return _re(_sticky_value(live, old_stable)), split


def _ingress(name, namespace, labels, annotations, *, host, ingress_class, service, port):
    rule: dict = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": service, "port": {"number": port}}},
                }
            ]
        }
    }
    if host:
        rule["host"] = host
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(name, namespace, labels, annotations),
        "spec": {"ingressClassName": ingress_class, "rules": [rule]},
    }


def _affinity_annotations(prefix: str) -> dict[str, str]:
    """ingress-nginx cookie affinity; on a canary, "sticky" keeps a client the canary served
    on it (https://kubernetes.github.io/ingress-nginx/examples/affinity/cookie/)."""
    return {
        f"{prefix}affinity": "cookie",
        f"{prefix}affinity-canary-behavior": "sticky",
        f"{prefix}session-cookie-name": STICKY_COOKIE,
        f"{prefix}session-cookie-max-age": str(STICKY_MAX_AGE),
        f"{prefix}session-cookie-samesite": "Lax",
    }


def stable_ingress(
    project: str, *, namespace: str, host: str = "", ingress_class: str = "nginx", port: int = 80,
    sticky: bool = False,
) -> dict:
    """The main Ingress: always the stable Service, never a canary annotation."""
    return _ingress(
        project,
        namespace,
        project_labels(project),
        _affinity_annotations("nginx.ingress.kubernetes.io/") if sticky else None,
        host=host,
        ingress_class=ingress_class,
        service=project,
        port=port,
    )


def canary_ingress(
    project: str,
    *,
    namespace: str,
    revision: str,
    weight: int,
    host: str = "",
    ingress_class: str = "nginx",
    port: int = 80,
    header: str = "",
    header_value: str = "",
    cookie: str = "",
    sticky: bool = False,
) -> dict:
    """ingress-nginx canary: the same host/path, sending ``weight``% to one revision.

    https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/#canary
    A request whose ``header`` is "always" (or ``header_value``), or whose ``cookie`` is
    "always", goes to the canary whatever the weight.
    """
    prefix = "nginx.ingress.kubernetes.io/"
    annotations = {
        f"{prefix}canary": "true",
        f"{prefix}canary-weight": str(int(weight)),
        f"{prefix}canary-weight-total": "100",
    }
    if header:
        annotations[f"{prefix}canary-by-header"] = header
        if header_value and header_value != "always":
            annotations[f"{prefix}canary-by-header-value"] = header_value
    if cookie:
        annotations[f"{prefix}canary-by-cookie"] = cookie
    if sticky:
        annotations.update(_affinity_annotations(prefix))
    labels = {**project_labels(project), LABEL_REVISION: str(revision), LABEL_COMPONENT: "canary"}
    return _ingress(
        canary_ingress_name(project),
        namespace,
        labels,
        annotations,
        host=host,
        ingress_class=ingress_class,
        service=revision_name(project, revision),
        port=port,
    )


# --- builds -------------------------------------------------------------------------------
def build_job_name(project: str, sha: str) -> str:
    return f"{project}-build-{sha[:12]}"


def image_ref(registry: str, project: str, sha: str) -> str:
    return f"{registry.rstrip('/')}/{project}:{sha}" if registry else f"{project}:{sha}"


def kaniko_context(clone_url: str, sha: str, branch: str = "main") -> str:
    """Kaniko's git context is git://<repo>#<ref>#<commit>: it fetches the project's branch
    and checks out the commit (so a commit only on that branch is found).

    https://github.com/chainguard-dev/kaniko#kaniko-build-contexts
    """
    url = urlparse(clone_url)
    if url.scheme not in ("https", "http", "git") or not url.netloc or "#" in clone_url:
        raise ValueError(f"kaniko can only clone https/git URLs, not {clone_url!r}")
    if not _BRANCH.match(branch or ""):
        raise ValueError(f"production branch {branch!r} cannot be built in cluster: use letters, digits, "
                         "'.', '_', '-' and '/'")
    if not re.fullmatch(r"[0-9a-f]{40}", sha or ""):
        raise ValueError(f"in-cluster builds need the full 40-character commit sha, not {sha!r}")
    return f"git://{url.netloc}{url.path}#refs/heads/{branch}#{sha}"


def build_job(
    spec: BuildSpec,
    *,
    namespace: str,
    executor_image: str = KANIKO_IMAGE,
    registry_secret: str = "",
    deadline_seconds: int = 1800,
) -> dict:
    """A one-shot Kaniko Job building spec.sha and pushing <registry>/<project>:<sha>."""
    labels = {
        **project_labels(spec.project),
        LABEL_COMPONENT: "build",
        "switchback.dev/commit": spec.sha[:40],
    }
    container: dict = {
        "name": "kaniko",
        "image": executor_image,
        "args": [
            f"--context={kaniko_context(spec.clone_url, spec.sha, spec.branch)}",
            f"--dockerfile={spec.dockerfile}",
            f"--destination={image_ref(spec.registry, spec.project, spec.sha)}",
            # The digest lands in the container's termination message, which the
            # runtime reads back from the pod status:
            # https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/
            "--digest-file=/dev/termination-log",
            "--cache=true",
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
        # Kaniko must be uid 0 inside its container to unpack layers, but needs neither
        # privilege escalation nor most capabilities.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {
                "drop": ["ALL"],
                "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
            },
        },
    }
    pod_spec: dict = {
        "restartPolicy": "Never",
        "containers": [container],
        "automountServiceAccountToken": False,
    }
    if registry_secret:
        container["volumeMounts"] = [{"name": "docker-config", "mountPath": "/kaniko/.docker"}]
        container["env"] = [{"name": "DOCKER_CONFIG", "value": "/kaniko/.docker"}]  # whatever the image sets
        pod_spec["volumes"] = [
            {
                "name": "docker-config",
                "secret": {
                    "secretName": registry_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(build_job_name(spec.project, spec.sha), namespace, labels),
        "spec": {
            "backoffLimit": 0,  # a failed build is reported, not silently retried
            "activeDeadlineSeconds": deadline_seconds,
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


# --- dry run ------------------------------------------------------------------------------
def traffic_objects(
    project: str,
    *,
    namespace: str,
    options: ProjectOptions,
    weights: Mapping[str, int],
    live_revision: str,
    routing: TrafficRouting | None = None,
    previous: Mapping[str, int] | None = None,
) -> list[dict]:
    """The routing objects for a project's router given weights (revision -> 0..100).

    ``routing``: the project's stickiness and header/cookie routing (None: the platform's
    KUBE_CANARY_HEADER on ingress-nginx, as before); ``previous``: the weights routed now.
    """
    port = options.service_port
    if options.canary_header and (routing is None or not routing.matches):
        # The platform-wide KUBE_CANARY_HEADER, for projects that name no header or cookie.
        routing = dataclasses.replace(routing or TrafficRouting(), header=options.canary_header,
                                      header_value="always")
    objs = [stable_service(project, namespace=namespace, live_revision=live_revision, port=port)]
    if options.router == "gateway":
        objs.append(
            http_route(
                project,
                namespace=namespace,
                weights=weights,
                hostnames=options.hostnames,
                parent_refs=options.parent_refs,
                port=port,
                routing=routing,
                live_revision=str(live_revision),
                previous=previous,
            )
        )
    elif options.router == "nginx":
        host = options.hostnames[0] if options.hostnames else ""
        others = [(r, w) for r, w in _by_revision(weights) if r != str(live_revision)]
        canary_rev, canary_weight = max(others, key=lambda rw: rw[1]) if others else (str(live_revision), 0)
        objs.append(
            stable_ingress(
                project,
                namespace=namespace,
                host=host,
                ingress_class=options.ingress_class,
                port=port,
                sticky=bool(routing and routing.sticky),
            )
        )
        objs.append(
            canary_ingress(
                project,
                namespace=namespace,
                revision=canary_rev,
                weight=canary_weight,
                host=host,
                port=port,
                ingress_class=options.ingress_class,
                **canary_routing(routing),
            )
        )
    return objs


def canary_routing(routing: TrafficRouting | None) -> dict:
    """The canary Ingress's header, cookie and affinity settings from a project's routing."""
    if routing is None:
        return {}
    return {"header": routing.header, "header_value": routing.header_value if routing.header else "",
            "cookie": routing.cookie, "sticky": routing.sticky}


def render_manifests(
    spec: RevisionSpec,
    *,
    namespace: str = "default",
    options: ProjectOptions | None = None,
    weights: Mapping[str, int] | None = None,
    progress_deadline_seconds: int = 600,
) -> list[dict]:
    """Every object Switchback would apply to run ``spec`` and route ``weights`` to it.

    Without weights the revision takes all traffic.  Order is apply order.
    """
    options = options or ProjectOptions()
    weights = dict(weights) if weights else {str(spec.revision): 100}
    live = max(weights.items(), key=lambda rw: (rw[1], _rev_key(rw[0])))[0]
    objs = [
        env_secret(spec, namespace=namespace),
        revision_deployment(
            spec,
            namespace=namespace,
            resources=options.resources,
            progress_deadline_seconds=progress_deadline_seconds,
        ),
        revision_service(spec.project, spec.revision, namespace=namespace, port=options.service_port),
    ]
    return objs + traffic_objects(
        spec.project, namespace=namespace, options=options, weights=weights, live_revision=live
    )
