"""pytest fixtures: a fresh fake API server per test, and a client configured for it.

Use from a conftest: ``from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401``.
"""

from __future__ import annotations

import pytest

from .server import FakeKubeAPI


@pytest.fixture
def kube_api():
    api = FakeKubeAPI().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kube_client(kube_api):
    """An official ``kubernetes`` ApiClient pointed at the fake."""
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = kube_api.url
    with client.ApiClient(cfg) as api_client:
        yield api_client
