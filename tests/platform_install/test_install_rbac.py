"""The platform's Role grants exactly what the Kubernetes runtime uses: derived from the
runtime's code (statically, every code path) and checked against the requests it really
makes to an API server (the fake one over HTTP, through the official client)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client as k8s

from deployments.runtimes.base import BuildSpec, HealthState, Probe, RevisionSpec
from deployments.runtimes.kubernetes import KubeClient, KubernetesRuntime, ProjectOptions
from deployments.runtimes.kubernetes import client as kube_client_module
from deployments.runtimes.kubernetes import manifests as m
from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_SOURCE = ROOT / "deployments" / "runtimes" / "kubernetes" / "runtime.py"
APPS_NS = "switchback-apps"

# KubeClient method -> RBAC verbs on the object's resource. Server-side apply is
# authorised as "patch", and as "create" when the object does not exist yet:
# https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply
CLIENT_VERBS = {
    "apply": ("create", "patch"),
    "get": ("get",),
    "list": ("list",),
    "watch": ("watch",),
    "delete": ("delete",),
    "patch": ("patch",),
}
# Methods bound to one kind and subresource: method -> (kind, subresource, verb).
CLIENT_FIXED = {
    "scale": ("Deployment", "scale", "patch"),
    "pod_log": ("Pod", "log", "get"),
    "patch_selector": ("Service", "", "patch"),
}
# Runtime helpers that take a kind: _wait_for lists, then watches.
RUNTIME_HELPERS = {"_wait_for": ("list", "watch")}

Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


# --- what the Role grants ---------------------------------------------------------------------
def role_permissions(rendered) -> set[Permission]:
    (role,) = [o for o in rendered if o["kind"] == "Role"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# --- what the code needs -------------------------------------------------------------------------
def resource_of(kind: str) -> tuple[str, str]:
    """(apiGroup, plural) for a kind the client manages, read from the official client's
    own request paths (or the custom resource's group and plural)."""
    spec = kube_client_module.KINDS[kind]
    if spec.crd[0]:
        group, _version, plural = spec.crd
        return group, plural
    source = inspect.getsource(getattr(spec.api, f"_read_{spec.suffix}_serialize"))
    path = re.search(r"resource_path='(/[^']+)'", source).group(1)
    found = re.match(r"^/(?:api/v1|apis/([^/]+)/[^/]+)/namespaces/\{namespace\}/([a-z]+)/\{name\}$", path)
    assert found, path
    return found.group(1) or "", found.group(2)


def applied_kinds() -> set[str]:
    """Every kind the manifest functions produce for the runtime to apply: each router, and
    the in-cluster build Job."""
    spec = RevisionSpec(project="hello", revision="2", image="hello:2", sha="a" * 40)
    kinds = {
        obj["kind"]
        for router in m.ROUTERS
        for obj in m.render_manifests(
            spec, options=ProjectOptions(router=router, hostnames=("hello.example.com",)), weights={"1": 90, "2": 10}
        )
    }
    build = BuildSpec(project="hello", sha="a" * 40, clone_url="https://git.example.com/a/b.git", registry="r:5000")
    kinds.add(m.build_job(build, namespace=APPS_NS)["kind"])
    return kinds


def runtime_calls() -> list[tuple[str, str | None]]:
    """(KubeClient method or runtime helper, kind literal or None) for every call in runtime.py.

    Inside a helper that takes the kind as a parameter (``_wait_for``), calls made with that
    parameter are accounted for at the helper's call sites instead."""
    calls = []
    for func in ast.walk(ast.parse(RUNTIME_SOURCE.read_text())):
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner, method = node.func.value, node.func.attr
            is_kube = isinstance(owner, ast.Attribute) and owner.attr == "kube"
            is_helper = isinstance(owner, ast.Name) and owner.id == "self" and method in RUNTIME_HELPERS
            if not (is_kube or is_helper):
                continue
            first = node.args[0] if node.args else None
            if func.name in RUNTIME_HELPERS and isinstance(first, ast.Name) and first.id == "kind":
                assert set(CLIENT_VERBS[method]) <= set(RUNTIME_HELPERS[func.name]), (func.name, method)
                continue
            kind = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            calls.append((method, kind))
    return calls


def required_permissions() -> set[Permission]:
    needed: set[Permission] = set()
    for method, kind in runtime_calls():
        if method in CLIENT_FIXED:
            fixed_kind, sub, verb = CLIENT_FIXED[method]
            group, plural = resource_of(fixed_kind)
            needed.add((group, f"{plural}/{sub}" if sub else plural, verb))
            continue
        if method == "apply":
            kinds = applied_kinds()  # the object is built by the manifest functions
        else:
            assert kind is not None, f"runtime.py calls {method}() with a kind the test cannot read"
            kinds = {kind}
        verbs = CLIENT_VERBS.get(method) or RUNTIME_HELPERS[method]
        for k in kinds:
            group, plural = resource_of(k)
            needed |= {(group, plural, verb) for verb in verbs}
    return needed


def test_every_client_method_has_known_rbac_verbs():
    """A new KubeClient method must be classified here before the Role can be checked."""
    public = {
        name
        for name, _ in inspect.getmembers(KubeClient, inspect.isfunction)
        if not name.startswith("_") and name != "close"
    }
    assert public == set(CLIENT_VERBS) | set(CLIENT_FIXED)


def test_the_role_grants_exactly_what_the_runtime_uses(rendered):
    needed, granted = required_permissions(), role_permissions(rendered)
    assert ("apps", "deployments/scale", "patch") in needed  # sanity: the derivation sees the calls
    assert ("", "pods/log", "get") in needed
    assert ("gateway.networking.k8s.io", "httproutes", "create") in needed
    assert not needed - granted, f"the Role is missing {sorted(needed - granted)}"
    assert not granted - needed, f"the Role grants more than the runtime uses: {sorted(granted - needed)}"


def test_no_wildcards_no_cluster_wide_rights(rendered):
    kinds = {o["kind"] for o in rendered}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    for obj in rendered:
        if obj["kind"] == "Role":
            for rule in obj["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key], rule
                    assert not any("*" in item for item in rule[key]), rule
                assert not rule.get("nonResourceURLs")
                # Escalation paths a runtime never needs.
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
                assert not {"roles", "rolebindings", "serviceaccounts/token"} & set(rule["resources"])
        if obj["kind"] == "RoleBinding":
            assert obj["roleRef"]["kind"] == "Role"
            assert obj["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")
            role = next(o for o in rendered if o["kind"] == "Role")
            assert obj["roleRef"]["name"] == role["metadata"]["name"]
            assert obj["metadata"]["namespace"] == role["metadata"]["namespace"] == APPS_NS
            (subject,) = obj["subjects"]
            account = next(o for o in rendered if o["kind"] == "ServiceAccount")
            assert (subject["kind"], subject["name"], subject["namespace"]) == (
                "ServiceAccount",
                account["metadata"]["name"],
                account["metadata"]["namespace"],
            )


# --- what the runtime really sends ------------------------------------------------------------
PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<rest>.+)$")


def request_permissions(method: str, url: str, content_type: str) -> set[Permission]:
    """How the API server authorises a request:
    https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb"""
    parsed = urlparse(url)
    found = PATH.match(parsed.path)
    assert found, f"not a namespaced request: {method} {url}"
    assert found["ns"] == APPS_NS, f"request outside the apps namespace: {method} {url}"
    parts = found["rest"].split("/")
    resource = parts[0] + (f"/{parts[2]}" if len(parts) > 2 else "")
    group = found["group"] or ""
    query = parse_qs(parsed.query)
    if method == "GET":
        if len(parts) == 1:
            verbs = {"watch"} if query.get("watch", [""])[0].lower() == "true" else {"list"}
        else:
            verbs = {"get"}
    elif method == "PATCH":
        verbs = {"patch", "create"} if content_type.startswith("application/apply-patch") else {"patch"}
    else:
        verbs = {{"POST": "create", "PUT": "update", "DELETE": "delete"}[method]}
        if method == "DELETE" and len(parts) == 1:
            verbs = {"deletecollection"}
    return {(group, resource, verb) for verb in verbs}


@pytest.fixture
def recorded(monkeypatch):
    seen: set[Permission] = set()
    original = k8s.ApiClient.call_api

    def call_api(self, method, url, header_params=None, *args, **kwargs):
        content_type = (header_params or {}).get("Content-Type", "")
        seen.update(request_permissions(method, url, content_type))
        return original(self, method, url, header_params, *args, **kwargs)

    monkeypatch.setattr(k8s.ApiClient, "call_api", call_api)
    return seen


def revision(rev: str, image: str = "") -> RevisionSpec:
    return RevisionSpec(
        project="hello",
        revision=rev,
        image=image or f"hello:{rev}",
        env={"GREETING": "hi"},
        readiness=Probe("/"),
        sha=rev * 40,
    )


def test_every_request_of_a_full_workout_is_granted(kube_api, recorded, rendered):  # noqa: F811
    """Rollouts on all three routers, a rollback, a never-ready revision, builds that
    succeed and fail, pruning: every request they send is allowed by the Role (and was
    predicted by the static derivation above)."""
    kube = KubeClient(host=kube_api.url, namespace=APPS_NS, backoff=0.01, request_timeout=5)
    rt = KubernetesRuntime(client=kube, progress_deadline_seconds=2, keep_revisions=0)

    def deploy(rev, **kw):
        rt.start_revision(spec=revision(rev, **kw))
        return rt.wait_ready(project="hello", revision=rev, timeout=10)

    assert deploy("1").state is HealthState.READY
    rt.set_traffic(project="hello", weights={"1": 100})
    assert deploy("2").state is HealthState.READY
    rt.set_traffic(project="hello", weights={"2": 100})
    rt.retire_revision(project="hello", revision="1")
    rt.start_revision(spec=revision("1"))  # rollback to a cold revision
    assert rt.wait_ready(project="hello", revision="1", timeout=10).state is HealthState.READY
    rt.set_traffic(project="hello", weights={"1": 100})
    kube_api.behave("hello:bad", "never_ready")
    assert deploy("3", image="hello:bad").state is HealthState.FAILED
    rt.discard_revision(project="hello", revision="3")
    for router in ("gateway", "nginx"):
        rt.configure_project("hello", ProjectOptions(router=router, hostnames=("hello.example.com",)))
        assert deploy("4").state is HealthState.READY
        rt.set_traffic(project="hello", weights={"1": 90, "4": 10})
        assert rt.current_weights("hello") == {"1": 90, "4": 10}
        rt.set_traffic(project="hello", weights={"1": 100})
    rt.observe(project="hello")
    rt.retire_revision(project="hello", revision="4")
    rt.prune(project="hello")

    builder = KubernetesRuntime(client=kube, build_mode="in_cluster", registry="r:5000", executor_image="k:1")
    build = BuildSpec(project="hello", sha="c" * 40, clone_url="https://git.example.com/a/hello.git")
    kube_api.behave(m.build_job_name("hello", build.sha), "fail")
    with pytest.raises(Exception, match="failed"):
        builder.build(spec=build, log=lambda line: None)
    kube_api.behave(m.build_job_name("hello", build.sha), "succeed")
    builder.build(spec=build, log=lambda line: None)  # deletes the failed Job, builds again
    kube.close()

    granted, predicted = role_permissions(rendered), required_permissions()
    assert recorded, "nothing was recorded"
    assert not recorded - granted, f"requests the Role would refuse: {sorted(recorded - granted)}"
    assert not recorded - predicted, f"requests the static derivation missed: {sorted(recorded - predicted)}"
    # The workout reaches every grant but the watches the fake's controller may make
    # unnecessary by finishing before the runtime starts watching.
    timing = {("apps", "deployments", "watch"), ("batch", "jobs", "watch")}
    assert not granted - recorded - timing, f"grants no request used: {sorted(granted - recorded - timing)}"
