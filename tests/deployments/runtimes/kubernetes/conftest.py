"""Fixtures for the Kubernetes runtime tests: a fake API server and a runtime bound to it."""

from __future__ import annotations

import pytest

from deployments.runtimes.kubernetes import KubeClient, KubernetesRuntime
from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401  (a fixture)


@pytest.fixture
def kube(kube_api):  # noqa: F811
    client = KubeClient(host=kube_api.url, namespace="default", backoff=0.01, request_timeout=5)
    yield client
    client.close()


@pytest.fixture
def runtime(kube):
    # A short progress deadline keeps the "never ready" scenarios fast.
    return KubernetesRuntime(client=kube, progress_deadline_seconds=2, keep_revisions=2)
