"""Sticky clients and header/cookie routing on Kubernetes: the manifests are valid against
the pinned schemas (kubernetes-validate strict, the Gateway API CRD schemas from
../shared/corpora), the real KubernetesRuntime writes them to the fake API server, and a
model of Gateway API's matching rules replays clients against the stored HTTPRoute."""

from __future__ import annotations

import random
import re
from collections import Counter

import jsonschema
import kubernetes_validate
import pytest

from deployments.runtimes.base import STICKY_COOKIE, TrafficRouting
from deployments.runtimes.kubernetes import ProjectOptions
from deployments.runtimes.kubernetes import manifests as m

from .test_k8s_manifests import K8S_VERSIONS, httproute_schema
from .test_k8s_rollouts import NS, deploy, live

ROUTING = TrafficRouting(sticky=True, header="X-Canary", header_value="always", cookie="canary", preview="2")
P = "nginx.ingress.kubernetes.io/"


def _objects(router: str, weights, routing=ROUTING, previous=None) -> list[dict]:
    opts = ProjectOptions(router=router, hostnames=("hello.example.com",))
    return m.traffic_objects("hello", namespace="apps", options=opts, weights=weights, live_revision="1",
                             routing=routing, previous=previous)


@pytest.mark.parametrize("gateway_version", ["v1.6.1", "v1.2.1"])
def test_routed_httproutes_are_valid_for_the_standard_channel(gateway_version):
    schema = httproute_schema(gateway_version)
    cases = [({"1": 90, "2": 10}, None), ({"1": 50, "2": 50}, {"1": 90, "2": 10}), ({"2": 100}, {"1": 50, "2": 50})]
    for weights, previous in cases:
        for routing in (ROUTING, TrafficRouting(header="X-Canary", preview="2"), TrafficRouting(sticky=True)):
            (route,) = [o for o in _objects("gateway", weights, routing, previous) if o["kind"] == "HTTPRoute"]
            jsonschema.Draft7Validator(schema).validate(route)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_routed_ingresses_are_valid_strictly(version):
    for obj in _objects("nginx", {"1": 90, "2": 10}):
        kubernetes_validate.validate(obj, version, strict=True)


def test_nginx_annotations_carry_the_projects_header_cookie_and_affinity():
    stable, canary = [o for o in _objects("nginx", {"1": 90, "2": 10}) if o["kind"] == "Ingress"]
    ann = canary["metadata"]["annotations"]
    assert ann[f"{P}canary-by-header"] == "X-Canary" and f"{P}canary-by-header-value" not in ann  # "always"
    assert ann[f"{P}canary-by-cookie"] == "canary"
    for a in (ann, stable["metadata"]["annotations"]):
        assert a[f"{P}affinity"] == "cookie" and a[f"{P}affinity-canary-behavior"] == "sticky"
        assert a[f"{P}session-cookie-name"] == STICKY_COOKIE
    custom = TrafficRouting(header="X-Team", header_value="qa-1", preview="2")
    _, canary = [o for o in _objects("nginx", {"1": 90, "2": 10}, custom) if o["kind"] == "Ingress"]
    assert canary["metadata"]["annotations"][f"{P}canary-by-header-value"] == "qa-1"
    stable, _ = [o for o in _objects("nginx", {"1": 90, "2": 10}, TrafficRouting()) if o["kind"] == "Ingress"]
    assert "annotations" not in stable["metadata"]  # no routing asked: the Ingress as before


def test_hostile_names_never_reach_a_manifest():
    for bad in ("X-Canary: always", "X-Canary\nnginx.ingress.kubernetes.io/server-snippet", "Host", "a b"):
        with pytest.raises(ValueError):
            TrafficRouting(header=bad, preview="2")
    with pytest.raises(ValueError):
        TrafficRouting(header="X-Canary", header_value="always\r\nX: y")


# --- a model of Gateway API's rule matching, to replay clients against a stored route --------

def _matches(h: dict, headers: dict[str, str]) -> bool:
    value = {k.lower(): v for k, v in headers.items()}.get(h["name"].lower())
    if value is None:
        return False
    return value == h["value"] if h.get("type", "Exact") == "Exact" else re.search(h["value"], value) is not None


def gateway_pick(route: dict, headers: dict[str, str], rng: random.Random) -> tuple[str, str | None]:
    """The Service a request reaches and the Set-Cookie it gets back: the matching rule with
    the most header matches, the first in list order among equals; then a weighted pick."""
    best = None
    for index, rule in enumerate(route["spec"]["rules"]):
        for match in rule["matches"]:
            if all(_matches(h, headers) for h in match.get("headers", [])):
                key = (-len(match.get("headers", [])), index)
                best = min(best, (key, rule)) if best else (key, rule)
    _, rule = best
    refs = [r for r in rule["backendRefs"] if r.get("weight", 1) > 0]
    ref = rng.choices(refs, weights=[r.get("weight", 1) for r in refs])[0]
    cookie = None
    for f in ref.get("filters", []):
        for h in f.get("responseHeaderModifier", {}).get("set", []):
            if h["name"] == "Set-Cookie":
                cookie = h["value"].split(";", 1)[0]
    return ref["name"], cookie


def test_gateway_sticky_clients_keep_their_revision_and_the_share_follows_the_weights(runtime, kube_api):
    runtime.configure_project("hello", ProjectOptions(router="gateway", hostnames=("hello.example.com",)))
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100}, routing=TrafficRouting(sticky=True))
    deploy(runtime, "2")
    rng = random.Random(5)
    jars: dict[int, str | None] = dict.fromkeys(range(3000))

    route: dict = {}

    def visit(client: int) -> str:
        headers = {"Cookie": jars[client]} if jars[client] else {}
        service, cookie = gateway_pick(route["route"], headers, rng)
        if cookie:
            jars[client] = cookie
        return service

    canary_before: set[int] = set()
    for weight in (10, 30, 50):
        runtime.set_traffic(project="hello", weights={"1": 100 - weight, "2": weight},
                            routing=TrafficRouting(sticky=True, preview="2"))
        assert runtime.current_weights("hello") == {"1": 100 - weight, "2": weight}
        assert live(kube_api) == "1"
        route["route"] = kube_api.get("httproutes", NS, "hello")
        seen = {c: {visit(c) for _ in range(3)} for c in jars}
        assert all(len(s) == 1 for s in seen.values())  # one revision per client while weights hold
        on_canary = {c for c, s in seen.items() if s == {"hello-r2"}}
        assert canary_before <= on_canary  # a canary client stays on it as it grows
        assert abs(len(on_canary) / len(jars) - weight / 100) < 0.03, (weight, len(on_canary))
        canary_before = on_canary
    runtime.set_traffic(project="hello", weights={"1": 100, "2": 0}, routing=TrafficRouting(sticky=True))  # abort
    route["route"] = kube_api.get("httproutes", NS, "hello")
    assert Counter(visit(c) for c in jars) == {"hello-r1": len(jars)}


def test_gateway_header_and_cookie_reach_the_preview_whatever_the_weight(runtime, kube_api):
    runtime.configure_project("hello", ProjectOptions(router="gateway"))
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    deploy(runtime, "2")
    runtime.set_traffic(project="hello", weights={"1": 99, "2": 1}, routing=ROUTING)
    route = kube_api.get("httproutes", NS, "hello")
    rng = random.Random(1)
    assert {gateway_pick(route, {"x-canary": "always"}, rng)[0] for _ in range(200)} == {"hello-r2"}
    assert {gateway_pick(route, {"Cookie": "a=1; canary=always"}, rng)[0] for _ in range(200)} == {"hello-r2"}
    assert Counter(gateway_pick(route, {"Cookie": "xcanary=always"}, rng)[0] for _ in range(500))["hello-r2"] < 25
    assert runtime.current_weights("hello") == {"1": 99, "2": 1}
    # Promoted: the preview is the live revision, no preview rule is left.
    runtime.set_traffic(project="hello", weights={"2": 100}, routing=TrafficRouting(header="X-Canary"))
    route = kube_api.get("httproutes", NS, "hello")
    assert len(route["spec"]["rules"]) == 1 and live(kube_api) == "2"


def test_nginx_routing_through_the_runtime(runtime, kube_api):
    runtime.configure_project("hello", ProjectOptions(router="nginx", hostnames=("hello.example.com",)))
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100}, routing=TrafficRouting(sticky=True, cookie="canary"))
    deploy(runtime, "2")
    runtime.set_traffic(project="hello", weights={"1": 90, "2": 10}, routing=ROUTING)
    ann = kube_api.get("ingresses", NS, "hello-canary")["metadata"]["annotations"]
    assert ann[f"{P}canary-by-header"] == "X-Canary" and ann[f"{P}canary-by-cookie"] == "canary"
    assert kube_api.get("ingresses", NS, "hello")["metadata"]["annotations"][f"{P}affinity"] == "cookie"
    runtime.set_traffic(project="hello", weights={"1": 100}, routing=TrafficRouting(cookie="canary"))  # abort
    ann = kube_api.get("ingresses", NS, "hello-canary")["metadata"]["annotations"]
    assert ann[f"{P}canary-weight"] == "0" and ann[f"{P}canary-by-cookie"] == "canary"


def test_the_platform_header_still_applies_to_projects_that_name_none():
    opts = ProjectOptions(router="nginx", canary_header="X-Platform")
    for routing in (None, TrafficRouting(sticky=True, preview="2")):
        objs = m.traffic_objects("hello", namespace="apps", options=opts, weights={"1": 90, "2": 10},
                                 live_revision="1", routing=routing)
        assert objs[-1]["metadata"]["annotations"][f"{P}canary-by-header"] == "X-Platform"
    objs = m.traffic_objects("hello", namespace="apps", options=opts, weights={"1": 90, "2": 10},
                             live_revision="1", routing=TrafficRouting(header="X-Mine", preview="2"))
    assert objs[-1]["metadata"]["annotations"][f"{P}canary-by-header"] == "X-Mine"
