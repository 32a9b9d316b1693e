"""Attack: one app reaches another app's containers around HAProxy (issue 9, "Crossing
projects").  Real Podman and HAProxy.

Each project's replicas join their own isolated network (networks.py); HAProxy and the
probes reach them through ports published on 127.0.0.1, so every project still serves.
"""

from __future__ import annotations

import pytest

from deployments.errors import PermanentError
from deployments.runtimes.base import RevisionSpec
from deployments.runtimes.single_host import containers as c
from deployments.runtimes.single_host.networks import network_name
from tests.deployments.runtimes.single_host.helpers import get

from .isolation_apps import APP_PORT, address, app_start, http_from, replicas_of

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]


@pytest.fixture(scope="module")
def apps(runtime, project_prefix, tmp_path_factory):
    from tests.single_host_fixtures import GitRepo

    repo = GitRepo(str(tmp_path_factory.mktemp("isolation-repo")))
    sha = repo.commit_example("hello", "isolation")
    a, b = f"{project_prefix}-iso-a", f"{project_prefix}-iso-b"
    images = {a: app_start(runtime, repo, project=a, sha=sha, replicas=2),
              b: app_start(runtime, repo, project=b, sha=sha)}
    yield {"a": a, "b": b, "images": images}
    for project in (a, b):
        runtime.retire_revision(project=project, revision="1")


def test_each_project_has_its_own_isolated_network(runtime, apps):
    a, b = apps["a"], apps["b"]
    for project in (a, b):
        for container in replicas_of(runtime, project):
            assert list(container.attrs["NetworkSettings"]["Networks"]) == [network_name(project, runtime.instance)]
        network = runtime.client.networks.get(network_name(project, runtime.instance))
        assert network.attrs["Labels"]["switchback.project"] == project
    assert address(replicas_of(runtime, a)[0], a)[0] != address(replicas_of(runtime, b)[0], b)[0]


def test_an_app_cannot_reach_another_apps_container(runtime, apps):
    a, b = apps["a"], apps["b"]
    a0, a1 = replicas_of(runtime, a)
    (b0,) = replicas_of(runtime, b)
    # The probe works: a replica reaches its sibling on the project's own network.
    assert " 200 " in http_from(a0, address(a1, a)[0], APP_PORT).splitlines()[0]
    # Across projects, by IP, either way: nothing comes back.
    assert http_from(a0, address(b0, b)[0], APP_PORT) == ""
    assert http_from(b0, address(a0, a)[0], APP_PORT) == ""


def test_an_app_cannot_reach_published_ports_through_its_gateway(runtime, apps):
    a, b = apps["a"], apps["b"]
    a0 = replicas_of(runtime, a)[0]
    (b0,) = replicas_of(runtime, b)
    gateway = address(a0, a)[1]
    # B's replica is published on the host's loopback only: the gateway does not lead there,
    assert http_from(a0, gateway, c.host_port(b0, APP_PORT)) == ""
    # nor to HAProxy's listener.
    assert http_from(a0, gateway, int(runtime.router.bind.rsplit(":", 1)[1])) == ""


def test_haproxy_still_serves_every_project(runtime, apps):
    for project in (apps["a"], apps["b"]):
        for _ in range(4):  # both of A's replicas take turns
            status, body = get(runtime, project, "/")
            assert status == 200 and "revision 1" in body


def test_an_image_built_for_another_project_never_starts(runtime, apps):
    a, b = apps["a"], apps["b"]
    with pytest.raises(PermanentError, match="built for another project"):
        runtime.start_revision(spec=RevisionSpec(project=a, revision="9", image=apps["images"][b]))
    assert c.list_replicas(runtime.client, a, "9") == []
