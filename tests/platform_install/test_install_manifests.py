"""The kustomization in platform/kubernetes: valid objects for the pinned Kubernetes
versions, probes and hardening on every container, secrets kept out, one image."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import warnings
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATION = ROOT / "platform" / "kubernetes"
VERSIONS = ("1.30.0", "1.37.0")
WORKLOADS = {"switchback-web": "web", "switchback-worker": "worker", "switchback-switch-worker": "switch-worker",
             "switchback-beat": "beat"}
PLATFORM_NS, APPS_NS = "switchback", "switchback-apps"


def of_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def pod_specs(objs):
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in of_kind(objs, "Deployment")}


def containers(objs):
    return [c for spec in pod_specs(objs).values() for c in spec.get("initContainers", []) + spec["containers"]]


def validate(obj: dict, version: str) -> None:
    """kubernetes-validate, strict; a kind it has no schema for is a failure, not a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "no schema" warning must fail too
        kubernetes_validate.validate(obj, version, strict=True)


# --- validity ---------------------------------------------------------------------------------
def test_kustomization_lists_every_manifest_but_the_secret_example():
    kustomization = yaml.safe_load((KUSTOMIZATION / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUSTOMIZATION.glob("*.yaml")} - {"kustomization.yaml"}
    assert "secret.example.yaml" not in listed
    assert on_disk - listed == {"secret.example.yaml"}, "every manifest is either listed or the secret example"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_is_valid_for_the_pinned_versions(rendered, version):
    kinds = {(o["apiVersion"], o["kind"]) for o in rendered}
    assert kinds == {
        ("v1", "Namespace"),
        ("v1", "ServiceAccount"),
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("networking.k8s.io/v1", "Ingress"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    }
    for obj in rendered:
        validate(obj, version)


def test_the_validator_is_not_a_rubber_stamp():
    """Strict mode rejects an unknown field, and a kind without a schema is an error."""
    deployment = yaml.safe_load((KUSTOMIZATION / "beat.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, VERSIONS[-1])
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "x"}}
    with pytest.raises((kubernetes_validate.SchemaNotFoundError, Warning)):
        validate(route, VERSIONS[-1])


def test_the_secret_example_is_valid_but_not_rendered(rendered):
    example = yaml.safe_load((KUSTOMIZATION / "secret.example.yaml").read_text())
    for version in VERSIONS:
        validate(example, version)
    assert set(example["stringData"]) == SECRET_NAMES
    assert not of_kind(rendered, "Secret")


# --- namespaces and identities ---------------------------------------------------------------
def test_platform_and_apps_live_in_their_own_namespaces(rendered):
    namespaces = {o["metadata"]["name"]: o for o in of_kind(rendered, "Namespace")}
    assert set(namespaces) == {PLATFORM_NS, APPS_NS}
    assert namespaces[PLATFORM_NS]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in rendered:
        if obj["kind"] in ("Namespace",):
            continue
        expected = APPS_NS if obj["kind"] in ("Role", "RoleBinding") else PLATFORM_NS
        assert obj["metadata"].get("namespace") == expected, obj["metadata"]["name"]
    (config,) = of_kind(rendered, "ConfigMap")
    assert config["data"]["KUBE_NAMESPACE"] == APPS_NS  # where the Role grants rights


def test_deployments_run_as_the_service_account_with_production_settings(rendered):
    (account,) = of_kind(rendered, "ServiceAccount")
    assert set(pod_specs(rendered)) == set(WORKLOADS)
    for name, spec in pod_specs(rendered).items():
        assert spec["serviceAccountName"] == account["metadata"]["name"]
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert env["KUBE_IN_CLUSTER"] == "1"
        assert container["args"] == [WORKLOADS[name]]
    # Only the processes that call the Kubernetes API carry a token.
    assert pod_specs(rendered)["switchback-beat"]["automountServiceAccountToken"] is False
    assert pod_specs(rendered)["switchback-worker"].get("automountServiceAccountToken", True) is True
    assert pod_specs(rendered)["switchback-switch-worker"].get("automountServiceAccountToken", True) is True


def test_a_worker_consumes_the_switch_queue_alone(rendered):
    """Rollbacks never queue behind builds: the shipped install runs a worker for `switch`
    (the entrypoint's switch-worker role: `celery worker --queues switch`)."""
    from django.conf import settings

    deployments = {d["metadata"]["name"]: d for d in of_kind(rendered, "Deployment")}
    switch = deployments["switchback-switch-worker"]
    assert switch["spec"]["replicas"] >= 1
    (container,) = switch["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["switch-worker"]
    entrypoint = (ROOT / "platform" / "entrypoint.sh").read_text()
    role = entrypoint.split("    switch-worker)\n", 2)[2].split(";;", 1)[0]
    assert f"--queues {settings.SWITCH_QUEUE}" in role and "celery -A config worker" in role


def test_beat_is_a_singleton(rendered):
    beat = next(d for d in of_kind(rendered, "Deployment") if d["metadata"]["name"] == "switchback-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"


# --- probes, resources, hardening ------------------------------------------------------------
def test_every_container_has_startup_readiness_and_liveness_probes(rendered):
    for container in containers(rendered):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in container, f"{container['name']} has no {probe}"
    (web,) = pod_specs(rendered)["switchback-web"]["containers"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
    for role in ("worker", "switch-worker", "beat"):
        (c,) = pod_specs(rendered)[f"switchback-{role}"]["containers"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["exec"]["command"] == ["switchback-entrypoint", "check", role]


def test_http_probes_send_a_host_that_django_allows(rendered):
    """The kubelet's default Host (the pod IP) is not in ALLOWED_HOSTS: Django would answer 400."""
    (config,) = of_kind(rendered, "ConfigMap")
    allowed = config["data"]["ALLOWED_HOSTS"].split(",")
    (web,) = pod_specs(rendered)["switchback-web"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        headers = {h["name"]: h["value"] for h in web[probe]["httpGet"].get("httpHeaders", [])}
        assert headers.get("Host") in allowed, probe


@pytest.mark.django_db
def test_health_endpoints_answer_the_probes_as_configured(rendered, client, settings):
    """The probes' requests, against the app with the manifest's ALLOWED_HOSTS."""
    (config,) = of_kind(rendered, "ConfigMap")
    settings.ALLOWED_HOSTS = config["data"]["ALLOWED_HOSTS"].split(",")
    (web,) = pod_specs(rendered)["switchback-web"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = web[probe]["httpGet"]
        host = {h["name"]: h["value"] for h in get["httpHeaders"]}["Host"]
        assert client.get(get["path"], HTTP_HOST=host).status_code == 200, probe
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 400  # why the header is set


def test_every_container_has_resources_and_a_hardened_security_context(rendered):
    for name, spec in pod_specs(rendered).items():
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True and pod_ctx["runAsUser"] > 0, name
        assert pod_ctx["seccompProfile"]["type"] == "RuntimeDefault", name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"] and "add" not in ctx["capabilities"]
            assert not ctx.get("privileged")
            assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]
            # A read-only root needs somewhere writable for gunicorn's and beat's files.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]


# --- secrets and images ----------------------------------------------------------------------
SECRET_NAMES = {"SECRET_KEY", "SWITCHBACK_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL"}
CREDENTIAL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")  # user:password@ in a URL


def test_no_secret_is_inlined(rendered):
    (config,) = of_kind(rendered, "ConfigMap")
    assert not SECRET_NAMES & set(config["data"])
    for key, value in config["data"].items():
        assert not CREDENTIAL.search(value), key
    for container in containers(rendered):
        assert not SECRET_NAMES & {e["name"] for e in container.get("env", [])}
        for e in container.get("env", []):
            assert not CREDENTIAL.search(e.get("value", "")), e["name"]
        refs = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
        assert refs == ["switchback-secrets"]
    text = "\n".join(p.read_text() for p in KUSTOMIZATION.glob("*.yaml") if p.name != "secret.example.yaml")
    assert not CREDENTIAL.search(text)


def test_one_image_for_every_role(rendered):
    images = {c["image"] for c in containers(rendered)}
    assert len(images) == 1, images
    (image,) = images
    kustomization = yaml.safe_load((KUSTOMIZATION / "kustomization.yaml").read_text())
    (entry,) = kustomization["images"]
    assert image == f"{entry.get('newName', entry['name'])}:{entry['newTag']}"
    assert not image.endswith(":latest")


# --- network ---------------------------------------------------------------------------------
def test_service_and_ingress_reach_the_web_pods(rendered):
    (service,) = of_kind(rendered, "Service")
    web = next(d for d in of_kind(rendered, "Deployment") if d["metadata"]["name"] == "switchback-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in web["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    (ingress,) = of_kind(rendered, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"  # dashboard, /api/ and /webhooks/
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    # GitHub's payload cap is 25 MB; ingress-nginx's default body limit is 1 MB.
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "25m"
    (config,) = of_kind(rendered, "ConfigMap")
    assert rule["host"] in config["data"]["ALLOWED_HOSTS"].split(",")
    assert config["data"]["SWITCHBACK_PUBLIC_URL"] == f"https://{rule['host']}"
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]


# --- platform/ is not a Python package -------------------------------------------------------
def test_platform_folder_is_not_a_python_package():
    assert not list((ROOT / "platform").rglob("__init__.py"))
    assert not list((ROOT / "platform").rglob("*.py")), "platform/ holds install files, not Python modules"


# --- the overlay docs/kubernetes.md shows --------------------------------------------------------
def test_the_documented_overlay_sets_image_hosts_and_settings(tmp_path, rendered):
    """docs/kubernetes.md's overlay (same text) renders and changes what it says it does."""
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    block = re.search(r"( *)```yaml\n *# deploy/switchback/kustomization.yaml\n(.*?)\n *```", doc, re.DOTALL)
    assert block, "the overlay example is gone from docs/kubernetes.md"
    overlay = yaml.safe_load(textwrap.dedent(block.group(2)))
    overlay["resources"] = [os.path.relpath(KUSTOMIZATION, tmp_path)]  # kustomize refuses absolute paths
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    out = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert {c["image"] for c in containers(objs)} == {"ghcr.io/acme/switchback:0.1.0"}
    (config,) = of_kind(objs, "ConfigMap")
    assert config["data"]["ALLOWED_HOSTS"] == "deploy.acme.dev,localhost"
    assert config["data"]["KUBE_NAMESPACE"] == APPS_NS  # merged, not replaced
    (ingress,) = of_kind(objs, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == ingress["spec"]["tls"][0]["hosts"][0] == "deploy.acme.dev"
    for obj in objs:
        validate(obj, VERSIONS[-1])
