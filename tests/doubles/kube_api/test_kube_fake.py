"""The fake API server itself, through the official client and kubectl."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from kubernetes import client, watch

from tests.doubles.kube_api.fixtures import kube_api, kube_client  # noqa: F401  (fixtures)

NS = "default"


def deployment(name="web", image="web:1", labels=None) -> dict:
    sel = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {"tier": "front"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": sel},
            "template": {
                "metadata": {"labels": sel},
                "spec": {
                    "containers": [
                        {"name": "app", "image": image},
                        {"name": "sidecar", "image": "envoy:1"},
                    ]
                },
            },
        },
    }


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_crud_status_and_typed_objects(kube_client, kube_api):  # noqa: F811
    apps = client.AppsV1Api(kube_client)
    created = apps.create_namespaced_deployment(NS, deployment())
    assert created.metadata.uid and created.metadata.generation == 1
    assert wait_for(lambda: apps.read_namespaced_deployment("web", NS).status.ready_replicas == 2)
    d = apps.read_namespaced_deployment("web", NS)
    assert {c.type for c in d.status.conditions} == {"Available", "Progressing"}
    pods = client.CoreV1Api(kube_client).list_namespaced_pod(NS, label_selector="app=web")
    assert len(pods.items) == 2 and pods.items[0].status.container_statuses[0].ready
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment(NS, deployment())
    assert err.value.status == 409 and "already exists" in err.value.body
    apps.delete_namespaced_deployment("web", NS)
    with pytest.raises(client.ApiException) as err:
        apps.read_namespaced_deployment("web", NS)
    assert err.value.status == 404 and '"reason": "NotFound"' in err.value.body
    assert wait_for(lambda: not kube_api.list("pods", NS))  # owned pods are collected


def test_label_selectors(kube_client):  # noqa: F811
    core = client.CoreV1Api(kube_client)
    for name, env in (("a", "prod"), ("b", "staging"), ("c", None)):
        labels = {"app": "x", **({"env": env} if env else {})}
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": labels}})

    def names(sel):
        return [
            c.metadata.name for c in core.list_namespaced_config_map(NS, label_selector=sel).items
        ]

    assert names("env=prod") == ["a"]
    assert names("env!=prod") == ["b", "c"]
    assert names("env in (prod, staging)") == ["a", "b"]
    assert names("env notin (prod),app=x") == ["b", "c"]
    assert names("!env") == ["c"]
    assert names("env") == ["a", "b"]


def test_patch_types_and_conflicts(kube_client):  # noqa: F811
    apps = client.AppsV1Api(kube_client)
    apps.create_namespaced_deployment(NS, deployment())
    # strategic merge: containers merge by name, the sidecar stays
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}},
        _content_type="application/strategic-merge-patch+json",
    )
    containers = apps.read_namespaced_deployment("web", NS).spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("app", "web:2"), ("sidecar", "envoy:1")]
    d = apps.patch_namespaced_deployment(
        "web",
        NS,
        {"metadata": {"labels": {"tier": None}}},
        _content_type="application/merge-patch+json",
    )
    assert d.metadata.labels is None or "tier" not in d.metadata.labels
    assert d.metadata.generation == 2  # the template change bumped it; labels do not
    d = apps.patch_namespaced_deployment(
        "web",
        NS,
        [{"op": "replace", "path": "/spec/replicas", "value": 1}],
        _content_type="application/json-patch+json",
    )
    assert d.spec.replicas == 1
    stale = d.to_dict(serialize=True)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    with pytest.raises(client.ApiException) as err:  # PUT with an old resourceVersion
        apps.replace_namespaced_deployment("web", NS, stale)
    assert err.value.status == 409
    assert apps.read_namespaced_deployment_scale("web", NS).spec.replicas == 3


def test_server_side_apply(kube_client):  # noqa: F811
    core = client.CoreV1Api(kube_client)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "annotations": {"a": "1", "b": "2"}},
        "data": {"k": "v"},
    }

    def apply(body, manager="me", force=None):
        return core.patch_namespaced_config_map(
            "cfg",
            NS,
            body,
            field_manager=manager,
            force=force,
            _content_type="application/apply-patch+yaml",
        )

    apply(cm)
    cm["metadata"]["annotations"] = {"a": "1"}  # we stop setting b: it goes
    assert apply(cm).metadata.annotations == {"a": "1"}
    other = {**cm, "data": {"k": "theirs"}}
    with pytest.raises(client.ApiException) as err:
        apply(other, manager="them")
    assert err.value.status == 409 and "conflict" in err.value.body
    assert apply(other, manager="them", force=True).data == {"k": "theirs"}


def test_watch_from_resource_version_with_timeout(kube_client, kube_api):  # noqa: F811
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "old"}})
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": "new"}})
    started = time.monotonic()
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=1
        )
    ]
    assert events == [("ADDED", "new")]  # only what happened after rv
    assert time.monotonic() - started > 0.9  # the watch held until its timeout_seconds
    kube_api.compact()
    with pytest.raises(client.ApiException) as err:
        list(
            watch.Watch().stream(
                core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=1
            )
        )
    assert err.value.status == 410


def test_injected_faults(kube_client, kube_api):  # noqa: F811
    core = client.CoreV1Api(kube_client)
    kube_api.fail_next(r"/configmaps", 500, times=1)
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_config_map(NS)
    assert err.value.status == 500
    assert core.list_namespaced_config_map(NS).items == []  # only the next one failed


@pytest.mark.parametrize(
    ("mode", "reason"), [("crashloop", "CrashLoopBackOff"), ("image_pull", "ImagePullBackOff")]
)
def test_pod_behaviours(kube_client, kube_api, mode, reason):  # noqa: F811
    kube_api.behave("web:bad", mode)
    client.AppsV1Api(kube_client).create_namespaced_deployment(NS, deployment(image="web:bad"))

    def waiting_reason():
        pods = kube_api.list("pods", NS)
        states = [
            cs["state"].get("waiting", {}).get("reason")
            for p in pods
            for cs in p["status"].get("containerStatuses", [])
        ]
        return reason in states

    assert wait_for(waiting_reason)


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kubectl_accepts_the_fake(kube_client, kube_api):  # noqa: F811
    client.AppsV1Api(kube_client).create_namespaced_deployment(NS, deployment())
    assert wait_for(
        lambda: kube_api.get("deployments", NS, "web")["status"].get("readyReplicas") == 2
    )

    def kubectl(*args):
        return subprocess.run(
            ["kubectl", "--server", kube_api.url, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    out = kubectl("get", "deploy")
    assert "web" in out and "2/2" in out
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "2"
    kubectl("scale", "deploy/web", "--replicas=1")
    assert kube_api.get("deployments", NS, "web")["spec"]["replicas"] == 1
    assert (
        "No resources found"
        in subprocess.run(
            ["kubectl", "--server", kube_api.url, "get", "httproutes"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stderr
    )
