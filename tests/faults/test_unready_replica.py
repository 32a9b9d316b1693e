"""Health after the switch: HAProxy checks every server on the readiness path.

Two replicas serve under load through the real HAProxy; one starts failing readiness.
HAProxy takes it out of rotation (fall x inter of the project's probe), no request reaches
it from then on and none fails; when it is ready again it comes back.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from deployments.runtimes.base import BuildSpec, Probe, RevisionSpec
from deployments.runtimes.single_host.containers import list_replicas
from deployments.runtimes.single_host.haproxy_config import server_name
from tests.deployments.runtimes.single_host.helpers import get, wait_health

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]

# A generous check timeout: on a loaded machine a healthy replica slow to answer must not
# be taken for an unready one (only the marker file makes a replica unready here).
READY = Probe(path="/readyz", period_seconds=0.2, timeout_seconds=3, failure_threshold=2)


def _server_status(runtime, project: str, name: str) -> str:
    for row in runtime.router.api.show_stat(runtime.router.backend(project)):
        if row.get("svname") == name:
            return row.get("status", "")
    return ""


def _wait_status(runtime, project: str, name: str, prefix: str, deadline: float = 20) -> float:
    start = time.monotonic()
    while not _server_status(runtime, project, name).startswith(prefix):
        assert time.monotonic() - start < deadline, f"{name} never became {prefix}"
        time.sleep(0.02)
    return time.monotonic() - start


def _count(runtime, project: str, seconds: float) -> tuple[Counter, int]:
    """Requests per replica (by container hostname) over a bounded window; failures apart."""
    seen: Counter = Counter()
    failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status, body = get(runtime, project, "/whoami")
        if status == 200:
            seen[body.strip()] += 1
        else:
            failed += 1
    return seen, failed


def test_a_replica_that_stops_being_ready_receives_nothing(runtime, engine, project_prefix, git_repo):
    project = f"{project_prefix}-unready"
    sha = git_repo.commit_example("hello", "unready")
    image = runtime.build(spec=BuildSpec(project=project, sha=sha, clone_url=git_repo.url), log=lambda _: None).ref
    runtime.start_revision(spec=RevisionSpec(project=project, revision="1", image=image, sha=sha, replicas=2,
                                             readiness=READY))
    try:
        assert wait_health(runtime, project, "1").state.value == "ready"
        runtime.set_traffic(project=project, weights={"1": 100})
        replicas = {c.labels["switchback.replica"]: c for c in list_replicas(engine.client, project, "1",
                                                                            instance=runtime.instance)}
        sick, healthy = replicas["0"], replicas["1"]
        before, failed = _count(runtime, project, 1.0)
        assert failed == 0 and set(before) == {sick.id[:12], healthy.id[:12]}  # both serve

        sick.exec_run(["touch", "/tmp/unready"])
        took = _wait_status(runtime, project, server_name("1", 0), "DOWN")
        during, failed = _count(runtime, project, 2.0)
        assert failed == 0
        assert during[sick.id[:12]] == 0 and during[healthy.id[:12]] > 0, during
        print(f"unready replica out of rotation after {took:.2f} s (fall x inter = "
              f"{READY.failure_threshold * READY.period_seconds:.2f} s)")

        sick.exec_run(["rm", "/tmp/unready"])
        _wait_status(runtime, project, server_name("1", 0), "UP")
        after, failed = _count(runtime, project, 1.0)
        assert failed == 0 and after[sick.id[:12]] > 0  # back in rotation
    finally:
        runtime.retire_revision(project=project, revision="1")
