"""The thin client sorts API trouble into transient and permanent errors, and the
runtime rides out transient faults (500, 409, 410 on a watch, a slow watch)."""

from __future__ import annotations

import socket

import pytest

from deployments.errors import PermanentError, TransientError
from deployments.runtimes.base import BuildSpec, HealthState, RevisionSpec
from deployments.runtimes.kubernetes import KubeClient, KubernetesRuntime
from deployments.runtimes.kubernetes.client import WatchExpired

SHA = "c0ffee" + "0" * 34
DEPLOYMENTS = r"/apis/apps/v1/namespaces/default/deployments"


def spec(rev="1", image="") -> RevisionSpec:
    return RevisionSpec(project="hello", revision=rev, image=image or f"hello:{rev}")


@pytest.mark.parametrize("code", [500, 503, 409, 429])
def test_transient_faults_are_retried(runtime, kube_api, code):
    kube_api.fail_next(DEPLOYMENTS, code, times=2, method="PATCH")
    runtime.start_revision(spec=spec())
    assert kube_api.get("deployments", "default", "hello-r1") is not None
    assert sum(1 for m, p in kube_api.requests if m == "PATCH" and "deployments" in p) == 3


def test_persistent_5xx_becomes_a_transient_error(runtime, kube_api):
    kube_api.fail_next(DEPLOYMENTS, 500, times=100)
    with pytest.raises(TransientError, match="500"):
        runtime.start_revision(spec=spec())


def test_rejections_are_permanent_with_the_api_message(runtime, kube):
    with pytest.raises(PermanentError, match="metadata.name"):
        runtime.start_revision(spec=spec(rev="Bad_Rev"))
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "c"}},
                "spec": {"containers": [{"name": "app", "image": "x"}]},
            },
        },
    }
    with pytest.raises(PermanentError, match="does not match template"):
        kube.apply(bad)


def test_unreachable_api_is_transient():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kube = KubeClient(host=f"http://127.0.0.1:{port}", retries=1, backoff=0.01)
    with pytest.raises(TransientError, match="cannot reach"):
        kube.get("Deployment", "x")


def test_delete_of_a_missing_object_is_fine(kube):
    kube.delete("Deployment", "never-was")
    kube.delete("HTTPRoute", "never-was")
    assert kube.get("HTTPRoute", "never-was") is None


def test_expired_watch_raises_watch_expired(kube, kube_api):
    _, rv = kube.list("Pod")
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    kube_api.compact()
    with pytest.raises(WatchExpired):
        list(kube.watch("Pod", resource_version=rv, timeout=1))


def test_watch_gone_is_recovered_by_listing_again(runtime, kube_api):
    kube_api.controller.ready_delay = 0.4  # so that waiting needs a watch
    kube_api.fail_next(r"/pods\?.*watch=true", 410, times=2)
    runtime.start_revision(spec=spec())
    health = runtime.wait_ready(project="hello", revision="1", timeout=10)
    assert health.state is HealthState.READY
    watches = [p for m, p in kube_api.requests if "watch=true" in p and "/pods" in p]
    assert len(watches) >= 3  # two answered 410 Gone, then one that saw the pod get ready


def test_slow_watch_still_converges(runtime, kube_api):
    kube_api.controller.ready_delay = 0.2
    kube_api.slow_next(r"watch=true", 0.5)
    runtime.start_revision(spec=spec())
    assert runtime.wait_ready(project="hello", revision="1", timeout=10).state is HealthState.READY


def test_prebuilt_build_formats_the_template(kube):
    rt = KubernetesRuntime(client=kube, image_template="registry.example.com/team/{project}:{sha}")
    lines: list[str] = []
    built = rt.build(spec=BuildSpec(project="hello", sha=SHA, clone_url="x"), log=lines.append)
    assert built.ref == f"registry.example.com/team/hello:{SHA}"
    assert lines and not kube.list("Job")[0]  # nothing was built in the cluster


def in_cluster(kube) -> KubernetesRuntime:
    return KubernetesRuntime(
        client=kube,
        build_mode="in_cluster",
        registry="registry.local:5000",
        executor_image="kaniko:test",
    )


BUILD = BuildSpec(project="hello", sha=SHA, clone_url="https://git.example.com/acme/hello.git")


def test_in_cluster_build_streams_logs_and_pins_the_digest(kube, kube_api):
    job = f"hello-build-{SHA[:12]}"
    kube_api.controller.logs[job] = "INFO Retrieving image manifest\nINFO Pushing image\n"
    kube_api.controller.termination_messages[job] = "sha256:" + "ab" * 32
    lines: list[str] = []
    built = in_cluster(kube).build(spec=BUILD, log=lines.append)
    assert "INFO Pushing image" in lines
    assert built.ref == "registry.local:5000/hello@sha256:" + "ab" * 32
    assert built.digest.startswith("sha256:") and not built.reused
    args = kube_api.get("jobs", "default", job)["spec"]["template"]["spec"]["containers"][0]
    assert f"--destination=registry.local:5000/hello:{SHA}" in args["args"]
    again = in_cluster(kube).build(spec=BUILD, log=lines.append)  # never rebuilt
    assert again.reused and again.ref == built.ref
    assert sum(1 for m, p in kube_api.requests if m == "PATCH" and "/jobs/" in p) == 1


def test_failed_in_cluster_build_is_permanent(kube, kube_api):
    kube_api.behave(f"hello-build-{SHA[:12]}", "fail")
    kube_api.controller.logs[f"hello-build-{SHA[:12]}"] = "error: COPY failed: no such file\n"
    lines: list[str] = []
    with pytest.raises(PermanentError, match="build of c0ffee"):
        in_cluster(kube).build(spec=BUILD, log=lines.append)
    assert "error: COPY failed: no such file" in lines


def test_in_cluster_build_needs_a_clonable_url(kube):
    with pytest.raises(PermanentError, match="https/git"):
        in_cluster(kube).build(spec=BuildSpec(project="hello", sha=SHA, clone_url="file:///x"), log=print)


def test_build_pod_that_cannot_run_fails_fast(kube, kube_api):
    kube_api.behave("kaniko:test", "image_pull")
    with pytest.raises(PermanentError, match="cannot run: image kaniko:test cannot be pulled"):
        in_cluster(kube).build(spec=BUILD, log=print)


def test_missing_kubeconfig_is_a_permanent_error(tmp_path):
    with pytest.raises(PermanentError, match="credentials"):
        KubeClient(kubeconfig=str(tmp_path / "nope.yaml"))


def test_the_platforms_registry_secret_reaches_the_build_job(kube_api, settings):
    """KUBE_REGISTRY_SECRET (a kubernetes.io/dockerconfigjson Secret) is what Kaniko pushes with."""
    from deployments.runtimes import runtime_cache_clear, runtime_get

    settings.SWITCHBACK = {**settings.SWITCHBACK, "KUBERNETES": {
        "host": kube_api.url, "namespace": "default", "build_mode": "in_cluster",
        "registry": "registry.local:5000", "registry_secret": "regcred", "executor_image": "kaniko:test"}}
    runtime_cache_clear()
    job = f"hello-build-{SHA[:12]}"
    kube_api.controller.termination_messages[job] = "sha256:" + "cd" * 32
    try:
        runtime_get(name="kubernetes").build(spec=BUILD, log=lambda line: None)
    finally:
        runtime_cache_clear()
    pod = kube_api.get("jobs", "default", job)["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "kaniko:test"
    assert pod["containers"][0]["volumeMounts"] == [{"name": "docker-config", "mountPath": "/kaniko/.docker"}]
    assert pod["volumes"][0]["secret"] == {"secretName": "regcred",
                                           "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
