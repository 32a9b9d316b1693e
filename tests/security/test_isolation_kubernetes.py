"""The same limits on Kubernetes: each revision's pod template carries the project's memory
and CPU limits and a locked-down security context, valid for the pinned Kubernetes
versions (kubernetes-validate, strict), and that is what the runtime applies."""

from __future__ import annotations

import kubernetes_validate
import pytest

from deployments.models import State
from deployments.runtimes import runtime_cache_clear
from deployments.runtimes.base import RevisionSpec
from deployments.runtimes.kubernetes import manifests as m
from deployments.services import deployment_request
from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401 - a fixture
from tests.rollout import rollout_drive

K8S_VERSIONS = ["1.30.0", "1.37.0"]
SPEC = RevisionSpec(project="shop", revision="3", image="registry.example.com/team/shop:" + "a" * 40,
                    memory_mb=256, cpus=0.5)


def _pod(deployment: dict) -> tuple[dict, dict]:
    pod = deployment["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def test_limits_and_security_context_in_the_pod_template():
    pod, container = _pod(m.revision_deployment(SPEC, namespace="apps"))
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False,
                                            "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False  # no API token for the app
    small = RevisionSpec(project="shop", revision="4", image="x", memory_mb=32, cpus=0.02)
    assert m.revision_resources(small) == {"requests": {"cpu": "20m", "memory": "32Mi"},
                                           "limits": {"cpu": "20m", "memory": "32Mi"}}  # requests <= limits


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_hardened_deployment_is_valid_strictly(version):
    kubernetes_validate.validate(m.revision_deployment(SPEC, namespace="apps"), version, strict=True)
    named = m.revision_deployment(SPEC, namespace="apps", service_account="shop-app")
    assert _pod(named)[0]["automountServiceAccountToken"] is True
    kubernetes_validate.validate(named, version, strict=True)


@pytest.fixture
def k8s(settings, kube_api):  # noqa: F811
    settings.SWITCHBACK = {**settings.SWITCHBACK,
                           "KUBERNETES": {"host": kube_api.url, "namespace": "default", "progress_deadline_seconds": 5}}
    runtime_cache_clear()
    yield kube_api
    runtime_cache_clear()


@pytest.mark.django_db
def test_the_runtime_applies_the_projects_limits(k8s, make_project, user):
    project = make_project(runtime="kubernetes", image_template="registry.example.com/hello:{sha}",
                           probe_period_seconds=0.1, memory_mb=384, cpus=1.5)
    deployment = rollout_drive(deployment_request(project=project, sha="b" * 40, actor=user))
    assert deployment.state == State.SUCCEEDED, deployment.failure_reason
    pod, container = _pod(k8s.get("deployments", "default", "hello-r1"))
    assert container["resources"]["limits"] == {"cpu": "1500m", "memory": "384Mi"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
