"""The in-cluster (Kaniko) build refuses what the single-host build refuses: a build file
path out of the context, and a deploy credential it cannot yet keep out of the Job spec.
Both are refused before any Job is created (the fake API server sees none)."""

from __future__ import annotations

import pytest

from deployments.runtimes.base import BuildSpec, GitCredential
from deployments.runtimes.kubernetes import KubeClient, KubernetesRuntime
from deployments.sources import SourceRefused
from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401  (a fixture)

SHA = "c0ffee" + "0" * 34
URL = "https://git.example.com/acme/hello.git"


@pytest.fixture
def runtime(kube_api):  # noqa: F811
    client = KubeClient(host=kube_api.url, namespace="default", backoff=0.01, request_timeout=5)
    yield KubernetesRuntime(client=client, build_mode="in_cluster", registry="registry.local:5000",
                            executor_image="kaniko:test")
    client.close()


def jobs(runtime) -> list:
    return runtime.kube.list("Job")[0]


@pytest.mark.parametrize("dockerfile", ["../../etc/passwd", "/etc/passwd", "--help"])
def test_a_dockerfile_out_of_the_context_creates_no_job(runtime, dockerfile):
    with pytest.raises(SourceRefused):
        runtime.build(spec=BuildSpec(project="hello", sha=SHA, clone_url=URL, dockerfile=dockerfile), log=print)
    assert jobs(runtime) == []


def test_a_deploy_credential_is_not_put_in_a_job(runtime):
    token = "ghp_never_in_a_job_spec"
    spec = BuildSpec(project="hello", sha=SHA, clone_url=URL, credential=GitCredential(token=token))
    with pytest.raises(Exception) as info:
        runtime.build(spec=spec, log=print)
    assert "prebuilt" in str(info.value) and token not in str(info.value)
    assert jobs(runtime) == []
