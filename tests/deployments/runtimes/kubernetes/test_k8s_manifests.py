"""Every object the manifests module emits is valid for pinned Kubernetes versions.

Built-in kinds are checked with kubernetes-validate in strict mode (unknown fields
fail) and a kind without a schema counts as a failure; HTTPRoutes are checked against
the Gateway API v1.6.1 CRD schema from ../shared/corpora.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from deployments.runtimes.base import BuildSpec, Probe, RevisionSpec
from deployments.runtimes.kubernetes import manifests as m
from deployments.runtimes.kubernetes.manifests import ProjectOptions, render_manifests

K8S_VERSIONS = ["1.30.0", "1.37.0"]  # an older supported cluster and the newest schemas
CORPORA = Path(os.environ.get("SWITCHBACK_CORPORA", Path(__file__).resolve().parents[5] / "shared" / "corpora"))
SHA = "0123456789abcdef0123456789abcdef01234567"
SPEC = RevisionSpec(
    project="hello",
    revision="7",
    image="registry.example.com/hello:" + SHA,
    port=8080,
    replicas=2,
    env={"DATABASE_URL": "postgres://db/hello", "DEBUG": "0"},
    sha=SHA,
    startup=Probe("/healthz", period_seconds=0.5, failure_threshold=30),
    readiness=Probe("/readyz", timeout_seconds=1.5, success_threshold=2),
    liveness=Probe("/healthz", initial_delay_seconds=2.5, success_threshold=3),
    drain_seconds=12.5,
)


def all_objects() -> list[dict]:
    objs = []
    for router in ("service", "gateway", "nginx"):
        opts = ProjectOptions(router=router, hostnames=("hello.example.com",), canary_header="X-Canary")
        objs += render_manifests(SPEC, namespace="apps", options=opts, weights={"6": 90, "7": 10})
    build = BuildSpec(
        project="hello",
        sha=SHA,
        clone_url="https://github.com/acme/hello.git",
        registry="registry.example.com/team",
    )
    objs.append(m.build_job(build, namespace="apps"))
    objs.append(m.build_job(build, namespace="apps", registry_secret="regcred"))
    objs.append(m.canary_ingress("hello", namespace="apps", revision="7", weight=0))
    return objs


def httproute_schema(version: str) -> dict:
    path = CORPORA / "k8s_schemas" / "gateway-api" / version / "httproute-v1.openAPIV3Schema.DERIVED.json"
    if not path.is_file():
        pytest.skip(
            f"Gateway API schema not found at {path}: HTTPRoutes are validated "
            "against the CRD schema kept in ../shared/corpora"
        )
    return json.loads(path.read_text())


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "obj",
    [o for o in all_objects() if o["kind"] != "HTTPRoute"],
    ids=lambda o: f"{o['kind']}-{o['metadata']['name']}",
)
def test_builtin_objects_are_valid_strictly(obj, version):
    # Raises SchemaNotFoundError for a kind it has no schema for: that fails the test.
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("gateway_version", ["v1.6.1", "v1.2.1"])
def test_httproutes_are_valid(gateway_version):
    schema = httproute_schema(gateway_version)
    routes = [o for o in all_objects() if o["kind"] == "HTTPRoute"]
    routes.append(m.http_route("hello", namespace="apps", weights={"1": 0, "2": 100}))
    assert routes
    for route in routes:
        jsonschema.Draft7Validator(schema).validate(route)


def test_validation_really_is_strict():
    bad = m.revision_deployment(SPEC, namespace="apps")
    bad["spec"]["bogusField"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)
    route = m.http_route("hello", namespace="apps", weights={"1": 100})
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 2_000_000  # above the maximum
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(httproute_schema("v1.6.1")).validate(route)


def test_revision_deployment_shape():
    d = m.revision_deployment(SPEC, namespace="apps")
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert d["metadata"]["name"] == "hello-r7"
    assert labels == {
        "app.kubernetes.io/name": "hello",
        "app.kubernetes.io/managed-by": "switchback",
        "switchback.dev/revision": "7",
    }
    assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert SHA[:12] in d["metadata"]["annotations"]["kubernetes.io/change-cause"]
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["envFrom"] == [{"secretRef": {"name": "hello-r7-env"}}]
    assert c["startupProbe"]["periodSeconds"] == 1  # 0.5s rounds up to the 1s minimum
    assert c["readinessProbe"]["timeoutSeconds"] == 2
    assert c["readinessProbe"]["successThreshold"] == 2
    assert c["livenessProbe"]["successThreshold"] == 1  # must be 1 for liveness
    assert c["livenessProbe"]["initialDelaySeconds"] == 3
    assert d["spec"]["replicas"] == 2


def test_services_and_routers():
    stable = m.stable_service("hello", namespace="apps", live_revision="6")
    assert stable["spec"]["selector"] == {
        "app.kubernetes.io/name": "hello",
        "switchback.dev/revision": "6",
    }
    route = m.http_route("hello", namespace="apps", weights={"10": 10, "9": 90}, parent_refs=[{"name": "edge"}])
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("hello-r9", 90), ("hello-r10", 10)]
    assert route["spec"]["parentRefs"] == [{"name": "edge"}]
    objs = render_manifests(
        SPEC,
        options=ProjectOptions(router="nginx", canary_header="X-C"),
        weights={"6": 90, "7": 10},
    )
    stable_ing, canary = [o for o in objs if o["kind"] == "Ingress"]
    assert "annotations" not in stable_ing["metadata"]
    ann = canary["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/canary"] == "true"
    assert ann["nginx.ingress.kubernetes.io/canary-weight"] == "10"
    assert ann["nginx.ingress.kubernetes.io/canary-by-header"] == "X-C"
    backend = canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "hello-r7"


def test_build_job():
    build = BuildSpec(
        project="hello",
        sha=SHA,
        clone_url="https://github.com/acme/hello.git",
        registry="registry.example.com/team",
    )
    job = m.build_job(build, namespace="apps", executor_image="kaniko:test")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "kaniko:test"
    assert f"--context=git://github.com/acme/hello.git#refs/heads/main#{SHA}" in c["args"]
    # The project's production branch, then the commit; a hostile branch never reaches the args.
    release = m.build_job(dataclasses.replace(build, branch="release/2.x"), namespace="apps")
    args = release["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--context=git://github.com/acme/hello.git#refs/heads/release/2.x#{SHA}" in args
    assert release["spec"]["template"]["spec"]["containers"][0]["image"] == m.KANIKO_IMAGE
    assert "kaniko-project" not in m.KANIKO_IMAGE  # not the archived upstream
    for bad in ("main#evil", "-x", "a..b", "a b", "", "x/"):
        with pytest.raises(ValueError):
            m.build_job(dataclasses.replace(build, branch=bad), namespace="apps")
    assert f"--destination=registry.example.com/team/hello:{SHA}" in c["args"]
    assert job["spec"]["backoffLimit"] == 0
    with pytest.raises(ValueError):
        m.build_job(BuildSpec(project="hello", sha=SHA, clone_url="file:///srv/hello"), namespace="apps")


def test_render_manifests_is_pure_and_ordered():
    a = render_manifests(SPEC, namespace="apps")
    assert a == render_manifests(SPEC, namespace="apps")
    assert [o["kind"] for o in a] == ["Secret", "Deployment", "Service", "Service"]
    assert a[3]["spec"]["selector"]["switchback.dev/revision"] == "7"


def test_pods_drain_themselves_with_a_prestop_pause_inside_the_grace_period():
    """Kubernetes drains: preStop `sleep` (no binary needed in the app's image) for the
    project's drain, then SIGTERM; the grace period covers both (schemas: see the strict
    validation above, 1.30 and 1.37)."""
    pod = m.revision_deployment(SPEC, namespace="apps")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 13}}}  # 12.5 s, rounded up
    assert pod["terminationGracePeriodSeconds"] == 13 + m.APP_STOP_SECONDS
    no_drain = m.revision_deployment(dataclasses.replace(SPEC, drain_seconds=0), namespace="apps")
    pod = no_drain["spec"]["template"]["spec"]
    assert "lifecycle" not in pod["containers"][0]  # sleep 0 is refused before Kubernetes 1.32
    assert pod["terminationGracePeriodSeconds"] == m.APP_STOP_SECONDS
