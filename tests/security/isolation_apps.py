"""Real apps for the isolation tests: the sample hello app built and started for a project
through the real single-host runtime (Podman + HAProxy), and a way to try a connection
from inside one of its containers."""

from __future__ import annotations

from deployments.runtimes.base import BuildSpec, HealthState, Probe, RevisionSpec
from deployments.runtimes.single_host import containers as c
from tests.deployments.runtimes.single_host.helpers import wait_health

READY = Probe(path="/readyz", period_seconds=0.2, timeout_seconds=1, failure_threshold=3)
APP_PORT = 8000


def app_start(runtime, repo, *, project: str, sha: str, replicas: int = 1, **spec) -> str:
    """Build the hello app for ``project``, run ``replicas`` replicas, route all traffic; image ref."""
    image = runtime.build(spec=BuildSpec(project=project, sha=sha, clone_url=repo.url), log=lambda _line: None).ref
    runtime.start_revision(spec=RevisionSpec(project=project, revision="1", image=image, replicas=replicas,
                                             sha=sha, readiness=READY, **spec))
    health = wait_health(runtime, project, "1")
    assert health.state == HealthState.READY, health
    runtime.set_traffic(project=project, weights={"1": 100})
    return image


def replicas_of(runtime, project: str) -> list:
    found = sorted(c.list_replicas(runtime.client, project), key=c.replica_index)
    for container in found:
        container.reload()
    return found


def address(container, project: str) -> tuple[str, str]:
    """(IP address, gateway) of the container on its project's network."""
    (network,) = container.attrs["NetworkSettings"]["Networks"].values()  # its project's, alone
    return network["IPAddress"], network["Gateway"]


def http_from(container, host: str, port: int, seconds: int = 2) -> str:
    """What a GET /healthz sent from inside ``container`` to host:port gets back ('' if nothing).

    busybox nc gives up after ``seconds`` when the connection is dropped or refused.
    """
    command = f"printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | nc -w {seconds} {host} {port} 2>/dev/null"
    result = container.exec_run(["sh", "-c", command])
    return result.output.decode(errors="replace")
