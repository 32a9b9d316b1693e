"""End to end against a real Kubernetes cluster: runs only when KUBECONFIG is set.

In a throwaway namespace, the real KubernetesRuntime deploys a revision, switches to a
second one, retires the first (scaled to zero), rolls back to it, refuses to route to a
revision whose image cannot be pulled, and cleans up. By default it talks to the API with
the token of a ServiceAccount bound to the platform's own Role (platform/kubernetes/rbac.yaml),
so it also proves that Role is enough on a real API server.

    KUBECONFIG=~/.kube/config [KUBE_CONTEXT=kind-kind] .venv/bin/pytest tests/platform_install/test_real_cluster.py

Settings (environment):
    SWITCHBACK_E2E_IMAGE       an image serving HTTP on SWITCHBACK_E2E_PORT as a non-root user
                               (default nginxinc/nginx-unprivileged:1.27-alpine, port 8080)
    SWITCHBACK_E2E_NAMESPACE   use this existing namespace instead of creating one (it is not deleted)
    SWITCHBACK_E2E_AS_PLATFORM 0: use the kubeconfig's own credentials instead of the platform's Role
    SWITCHBACK_E2E_TIMEOUT     seconds a revision may take to become ready (default 300)
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import pytest
import yaml

KUBECONFIG = os.environ.get("KUBECONFIG", "")
pytestmark = pytest.mark.skipif(
    not KUBECONFIG,
    reason="real-cluster suite: set KUBECONFIG (and optionally KUBE_CONTEXT) to a cluster it may create a namespace in",
)

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = os.environ.get("KUBE_CONTEXT", "")
IMAGE = os.environ.get("SWITCHBACK_E2E_IMAGE", "nginxinc/nginx-unprivileged:1.27-alpine")
PORT = int(os.environ.get("SWITCHBACK_E2E_PORT", "8080"))
TIMEOUT = float(os.environ.get("SWITCHBACK_E2E_TIMEOUT", "300"))
AS_PLATFORM = os.environ.get("SWITCHBACK_E2E_AS_PLATFORM", "1") != "0"
PROJECT = "e2e-hello"
REV = "switchback.dev/revision"


def admin_api():
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=KUBECONFIG, context=CONTEXT or None, client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def namespace():
    from kubernetes import client

    given = os.environ.get("SWITCHBACK_E2E_NAMESPACE", "")
    api = admin_api()
    core = client.CoreV1Api(api)
    name = given or f"switchback-e2e-{uuid.uuid4().hex[:8]}"
    if not given:
        core.create_namespace(
            {"metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "switchback-e2e"}}}
        )
    try:
        yield name
    finally:
        if not given:
            core.delete_namespace(name, propagation_policy="Background")
        api.close()


def platform_role(namespace: str) -> list[dict]:
    """The platform's Role and a ServiceAccount bound to it, moved into ``namespace``."""
    rbac = [d for d in yaml.safe_load_all((ROOT / "platform/kubernetes/rbac.yaml").read_text()) if d]
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "switchback-e2e"}}
    for obj in (*rbac, account):
        obj["metadata"]["namespace"] = namespace
    binding = next(o for o in rbac if o["kind"] == "RoleBinding")
    binding["subjects"] = [{"kind": "ServiceAccount", "name": "switchback-e2e", "namespace": namespace}]
    return [account, *rbac]


def platform_kubeconfig(namespace: str, tmp: Path) -> str:
    """A kubeconfig for the same cluster whose user is a ServiceAccount holding only the
    platform's Role in ``namespace``."""
    from kubernetes import client, utils

    api = admin_api()
    try:
        for obj in platform_role(namespace):
            try:
                utils.create_from_dict(api, obj, namespace=namespace)
            except utils.FailToCreateError as exc:
                if any(getattr(e, "status", 0) == 403 for e in exc.api_exceptions):
                    pytest.skip(
                        "these credentials cannot create a Role and ServiceAccount in the test namespace; "
                        "set SWITCHBACK_E2E_AS_PLATFORM=0 to run with the kubeconfig's own credentials"
                    )
                raise
        token = (
            client.CoreV1Api(api)
            .create_namespaced_service_account_token("switchback-e2e", namespace, {"spec": {"expirationSeconds": 3600}})
            .status.token
        )
        cfg = api.configuration
        cluster: dict = {"server": cfg.host}
        if cfg.ssl_ca_cert:
            cluster["certificate-authority-data"] = base64.b64encode(Path(cfg.ssl_ca_cert).read_bytes()).decode()
        if not cfg.verify_ssl:
            cluster["insecure-skip-tls-verify"] = True
    finally:
        api.close()
    path = tmp / "platform-kubeconfig.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "switchback", "user": {"token": token}}],
                "contexts": [{"name": "platform", "context": {"cluster": "c", "user": "switchback"}}],
                "current-context": "platform",
            }
        )
    )
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
def runtime(namespace, tmp_path_factory):
    from deployments.runtimes.kubernetes import KubernetesRuntime

    if AS_PLATFORM:
        rt = KubernetesRuntime(
            namespace=namespace, kubeconfig=platform_kubeconfig(namespace, tmp_path_factory.mktemp("kube"))
        )
    else:
        rt = KubernetesRuntime(namespace=namespace, kubeconfig=KUBECONFIG, context=CONTEXT)
    yield rt
    # Clean up what the runtime made, even when a step failed (the namespace may be reused).
    for observed in rt.observe(project=PROJECT):
        rt.delete_revision(project=PROJECT, revision=observed.revision)
    rt.kube.delete("Service", PROJECT)
    assert rt.observe(project=PROJECT) == []
    rt.kube.close()


def revision(rev: str, image: str = IMAGE):
    from deployments.runtimes.base import Probe, RevisionSpec

    return RevisionSpec(
        project=PROJECT,
        revision=rev,
        image=image,
        port=PORT,
        replicas=1,
        env={"GREETING": f"hello from r{rev}"},
        startup=Probe("/", period_seconds=2, failure_threshold=30),
        readiness=Probe("/", period_seconds=2),
        liveness=Probe("/", period_seconds=10),
        sha=f"{rev:0>40}",
    )


def ready(runtime, rev: str, image: str = IMAGE):
    from deployments.runtimes.base import HealthState

    runtime.start_revision(spec=revision(rev, image))
    health = runtime.wait_ready(project=PROJECT, revision=rev, timeout=TIMEOUT)
    assert health.state is HealthState.READY, health.message
    return health


def live(runtime) -> str:
    return runtime.kube.get("Service", PROJECT)["spec"]["selector"][REV]


def assert_serves(runtime, rev: str) -> None:
    """The stable Service's EndpointSlices (what kube-proxy routes to) list only ``rev``'s pods."""
    from kubernetes import client

    pods, _ = runtime.kube.list("Pod", selector=f"app.kubernetes.io/name={PROJECT},{REV}={rev}")
    expected = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
    api = admin_api()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
                    runtime.namespace, label_selector=f"kubernetes.io/service-name={PROJECT}"
                )
            except client.ApiException as exc:
                if exc.status == 404:  # no discovery.k8s.io/v1 (Kubernetes < 1.21, or a test double)
                    warnings.warn("EndpointSlices unavailable: routing checked by selector only", stacklevel=2)
                    return
                raise
            serving = {
                e.target_ref.name
                for s in slices.items
                for e in s.endpoints or []
                if e.target_ref and (e.conditions is None or e.conditions.ready is not False)
            }
            if serving and serving <= expected:
                return
            assert time.monotonic() < deadline, f"Service {PROJECT} routes to {serving}, not r{rev}'s {expected}"
            time.sleep(1)
    finally:
        api.close()


def test_deploy_switch_rollback_and_clean_up(runtime):
    from deployments.runtimes.base import HealthState

    # Deploy r1 and send it all traffic.
    ready(runtime, "1")
    runtime.set_traffic(project=PROJECT, weights={"1": 100})
    assert live(runtime) == "1"
    assert_serves(runtime, "1")

    # r2 starts beside r1 without taking traffic, then takes it all in one switch.
    ready(runtime, "2")
    assert live(runtime) == "1"
    runtime.set_traffic(project=PROJECT, weights={"2": 100})
    assert live(runtime) == "2"
    assert_serves(runtime, "2")

    # The old revision is kept at zero replicas: a cold rollback target.
    runtime.retire_revision(project=PROJECT, revision="1")
    assert runtime.kube.get("Deployment", f"{PROJECT}-r1")["spec"]["replicas"] == 0

    # A revision that can never run fails fast; traffic stays where it was.
    runtime.start_revision(spec=revision("3", "registry.invalid/switchback/no-such-image:0"))
    failed = runtime.wait_ready(project=PROJECT, revision="3", timeout=TIMEOUT)
    assert failed.state is HealthState.FAILED and "cannot be pulled" in failed.message, failed.message
    runtime.discard_revision(project=PROJECT, revision="3")
    assert live(runtime) == "2"
    assert runtime.kube.get("Deployment", f"{PROJECT}-r3") is None

    # Roll back to r1: scaled up again, ready, then the selector moves back.
    ready(runtime, "1")
    runtime.set_traffic(project=PROJECT, weights={"1": 100})
    assert live(runtime) == "1"
    assert_serves(runtime, "1")
    runtime.retire_revision(project=PROJECT, revision="2")

    observed = {o.revision: o for o in runtime.observe(project=PROJECT)}
    assert observed["1"].weight == 100 and observed["1"].replicas == 1
    assert observed["2"].weight == 0
    assert observed["1"].image == IMAGE


def test_kubectl_sees_the_change_cause(runtime):
    """What `kubectl rollout history` shows for a revision names the commit."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    ready(runtime, "4")
    out = subprocess.run(
        [
            "kubectl",
            *(["--context", CONTEXT] if CONTEXT else []),
            "-n",
            runtime.namespace,
            "get",
            "deployment",
            f"{PROJECT}-r4",
            "-o",
            "jsonpath={.metadata.annotations.kubernetes\\.io/change-cause}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": KUBECONFIG},
        check=True,
    )
    assert out.stdout == f"switchback: deploy {revision('4').sha[:12]} as r4"
    runtime.discard_revision(project=PROJECT, revision="4")
