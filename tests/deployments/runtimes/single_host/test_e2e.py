"""End to end with real Podman and real HAProxy: build, start, probe, switch, roll back,
retire, observe.  Tests in this module share one project and run in file order."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from deployments.errors import PermanentError
from deployments.runtimes.base import BuildSpec, HealthState, Probe, RevisionSpec
from deployments.runtimes.single_host import containers as c
from deployments.runtimes.single_host.images import image_tag

from .helpers import Load, get, wait_health, wait_served

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]

READY_PROBE = Probe(path="/readyz", period_seconds=0.2, timeout_seconds=1, failure_threshold=3)
STARTUP_PROBE = Probe(path="/healthz", period_seconds=0.1, timeout_seconds=1, failure_threshold=50)


@pytest.fixture(scope="module")
def hello(runtime, project_prefix, tmp_path_factory):
    from tests.single_host_fixtures import GitRepo

    path = tmp_path_factory.mktemp("hello-repo")
    repo = GitRepo(str(path))
    # A multi-line message: the image label that keeps it must survive newlines.
    shas = {"1": repo.commit_example("hello", "one\n\nwith a body: $(x) `y` \"z\""),
            "2": repo.commit_example("hello", "two")}
    return {"project": f"{project_prefix}-hello", "repo": repo, "shas": shas, "images": {}}


def _spec(hello, revision: str, **kw) -> RevisionSpec:
    return RevisionSpec(
        project=hello["project"],
        revision=revision,
        image=hello["images"][revision],
        sha=hello["shas"][revision],
        startup=STARTUP_PROBE,
        readiness=READY_PROBE,
        **kw,
    )


def test_build_streams_log_and_reuses_image(runtime, hello):
    lines: list[str] = []
    for revision, sha in hello["shas"].items():
        spec = BuildSpec(project=hello["project"], sha=sha, clone_url=hello["repo"].url)
        built = runtime.build(spec=spec, log=lines.append)
        assert built.ref == image_tag(hello["project"], sha, instance=runtime.instance) and not built.reused
        assert built.commit_message.startswith(f"hello {'one' if revision == '1' else 'two'}")
        assert built.digest.startswith("sha256:")
        hello["images"][revision] = built.ref
    assert any("STEP" in line for line in lines), lines

    again = runtime.build(
        # A URL the source check accepts (the test settings allow the temp folder) but that
        # holds no repository: the image is reused without a fetch.
        spec=BuildSpec(project=hello["project"], sha=hello["shas"]["1"],
                       clone_url=f"file://{tempfile.gettempdir()}/nonexistent-{uuid.uuid4().hex}"),
        log=lines.append,
    )
    assert again.reused and again.ref == hello["images"]["1"]  # no fetch, no rebuild
    # The commit's message and author, from the checkout, then from the image's labels.
    assert again.commit_message == 'hello one\n\nwith a body: $(x) `y` "z"' and again.commit_author == "t"


def test_start_probe_and_route_revision_1(runtime, hello):
    project = hello["project"]
    runtime.start_revision(spec=_spec(hello, "1"))
    health = wait_health(runtime, project, "1")
    assert health.state == HealthState.READY, health
    assert (health.ready_replicas, health.replicas) == (1, 1)

    runtime.set_traffic(project=project, weights={"1": 100})
    assert get(runtime, project, "/version") == (200, hello["shas"]["1"] + "\n")
    # HAProxy dials the replica on a port from the publish range, not the ephemeral one.
    low, high = runtime.publish_ports
    assert all(low <= port <= high for _host, port in runtime._revision_servers(project, "1").values())
    status, body = get(runtime, project, "/")
    assert status == 200 and "revision 1" in body
    status, body = get(runtime, "no-such-app", "/")
    assert status == 404 and "no app" in body


def test_start_revision_is_idempotent_and_replaces_dead_replicas(runtime, engine, hello):
    project = hello["project"]
    (first,) = engine.client.containers.list(filters={"name": f"sb-{runtime.instance}-{project}-1-0"})
    runtime.start_revision(spec=_spec(hello, "1"))
    (same,) = engine.client.containers.list(filters={"name": f"sb-{runtime.instance}-{project}-1-0"})
    assert same.id == first.id

    first.kill()
    runtime.start_revision(spec=_spec(hello, "1"))
    # A stopped replica is started again as it was created (a cold start, not a create).
    (restarted,) = engine.client.containers.list(filters={"name": f"sb-{runtime.instance}-{project}-1-0"})
    assert restarted.id == first.id and restarted.status == "running"
    c.remove_container(restarted, stop_timeout=0)  # gone altogether: a new one is created
    runtime.start_revision(spec=_spec(hello, "1"))
    (replaced,) = engine.client.containers.list(filters={"name": f"sb-{runtime.instance}-{project}-1-0"})
    assert replaced.id != first.id
    assert wait_health(runtime, project, "1").state == HealthState.READY
    # HAProxy follows the new replica's port: revision 1 serves its traffic again once
    # HAProxy's own check of the new address passes (within one check interval).
    assert wait_served(runtime, project, "/version") == (200, hello["shas"]["1"] + "\n")


def test_switch_under_load_drops_nothing(runtime, hello):
    project = hello["project"]
    runtime.start_revision(spec=_spec(hello, "2"))
    assert wait_health(runtime, project, "2").state == HealthState.READY

    with Load(runtime, project) as load:
        load.wait_for(100)
        started = time.perf_counter()
        runtime.set_traffic(project=project, weights={"2": 100})
        switch_seconds = time.perf_counter() - started
        load.wait_for(100)
    print(
        f"\nswitch 1->2: {switch_seconds * 1000:.1f} ms; {load.total} requests, "
        f"{load.non_2xx} non-2xx, {len(load.errors)} errors"
    )
    assert load.errors == [] and load.non_2xx == 0
    assert set(load.bodies) == {hello["shas"]["1"], hello["shas"]["2"]}
    assert all(get(runtime, project, "/version")[1].strip() == hello["shas"]["2"] for _ in range(5))


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_weight_switches_under_wrk_drop_nothing(runtime, hello):
    """wrk keeps connections to HAProxy open while weights flip back and forth."""
    project = hello["project"]
    base, host = runtime.route_url(project)
    wrk = subprocess.Popen(
        ["wrk", "-t2", "-c8", "-d3s", "--timeout", "10s", "-H", f"Host: {host}", f"{base}/version"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)  # let wrk connect before the first switch
        for weights in ({"1": 100}, {"1": 50, "2": 50}, {"2": 100}, {"1": 10, "2": 90}, {"2": 100}):
            runtime.set_traffic(project=project, weights=weights)
            time.sleep(0.4)
        out, _ = wrk.communicate(timeout=20)
    finally:
        if wrk.poll() is None:
            wrk.kill()
    print("\n" + out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    assert total > 100
    assert "Non-2xx" not in out, out
    assert "Socket errors" not in out, out


def test_warm_rollback_is_weights_only(runtime, hello):
    """Going back to a running revision starts, creates and stops nothing (how fast it is,
    bench/zero_downtime.py and bench/rollback_latency.py measure)."""
    project = hello["project"]
    before = {(k.id, k.status) for k in c.list_replicas(runtime.client, project, instance=runtime.instance)}
    started = time.perf_counter()
    runtime.set_traffic(project=project, weights={"1": 100})
    elapsed = time.perf_counter() - started
    print(f"\nrollback 2->1: {elapsed * 1000:.1f} ms")
    assert get(runtime, project, "/version") == (200, hello["shas"]["1"] + "\n")
    assert {(k.id, k.status) for k in c.list_replicas(runtime.client, project, instance=runtime.instance)} == before


def test_keep_alive_clients_follow_a_switch(runtime, hello):
    """After a switch, the next request on an open client connection reaches the new revision:
    a rollback away from a bad revision must not leave keep-alive clients on it."""
    import http.client
    from urllib.parse import urlsplit

    project = hello["project"]
    base, host = runtime.route_url(project)
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)

    def version() -> str:
        conn.request("GET", "/version", headers={"Host": host})
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode().strip()

    try:
        runtime.set_traffic(project=project, weights={"1": 100})
        assert {version() for _ in range(3)} == {hello["shas"]["1"]}
        runtime.set_traffic(project=project, weights={"2": 100})
        assert [version() for _ in range(5)] == [hello["shas"]["2"]] * 5
        runtime.set_traffic(project=project, weights={"1": 100})
        assert [version() for _ in range(5)] == [hello["shas"]["1"]] * 5
    finally:
        conn.close()


def test_observe_reports_containers_and_weights(runtime, hello):
    project = hello["project"]
    observed = {o.revision: o for o in runtime.observe(project=project)}
    assert set(observed) == {"1", "2"}
    assert (observed["1"].replicas, observed["1"].weight) == (1, 100)
    assert (observed["2"].replicas, observed["2"].weight) == (1, 0)
    assert observed["2"].image.endswith(hello["images"]["2"])
    everything = runtime.observe()
    assert {(o.project, o.revision) for o in everything} >= {(project, "1"), (project, "2")}


def test_split_traffic_reaches_both_revisions(runtime, hello):
    project = hello["project"]
    runtime.set_traffic(project=project, weights={"1": 50, "2": 50})
    # HAProxy's weighted round robin balances over a round of total weight (256 here),
    # not over every few requests: count enough of them.
    with Load(runtime, project) as load:
        load.wait_for(300)
    share = load.bodies[hello["shas"]["1"]] / load.total
    assert load.errors == [] and 0.3 < share < 0.7, load.bodies
    assert {o.revision: o.weight for o in runtime.observe(project=project)} == {"1": 50, "2": 50}
    runtime.set_traffic(project=project, weights={"1": 100})


def test_liveness_failure_restarts_the_replica(runtime, engine, hello):
    project = hello["project"]
    bad_liveness = Probe(path="/no-such-path", period_seconds=0.05, failure_threshold=2)
    runtime.start_revision(
        spec=RevisionSpec(
            project=project,
            revision="3",
            image=hello["images"]["2"],
            sha=hello["shas"]["2"],
            readiness=READY_PROBE,
            liveness=bad_liveness,
        )
    )
    assert wait_health(runtime, project, "3").state == HealthState.READY
    (container,) = engine.client.containers.list(filters={"name": f"sb-{runtime.instance}-{project}-3-0"})
    started_at = container.attrs["State"]["StartedAt"]
    failures = []
    end = time.monotonic() + 5
    while not failures and time.monotonic() < end:
        failures = runtime.check_liveness(project=project)
        time.sleep(0.06)
    assert failures and failures[0].revision == "3"
    assert "liveness /no-such-path returned 404 (2 times); restarted" in failures[0].message
    container.reload()
    assert container.status == "running" and container.attrs["State"]["StartedAt"] != started_at
    runtime.retire_revision(project=project, revision="3")


def test_retire_lets_in_flight_requests_finish(runtime, engine, hello):
    project = hello["project"]
    result: dict = {}
    slow = threading.Thread(target=lambda: result.update(r=get(runtime, project, "/slow")))
    slow.start()
    time.sleep(0.3)  # the slow request is now in flight on revision 1
    runtime.set_traffic(project=project, weights={"2": 100})
    started = time.perf_counter()
    runtime.retire_revision(project=project, revision="1", drain_seconds=10)
    waited = time.perf_counter() - started
    slow.join(timeout=10)
    assert result["r"] == (200, "slow 1\n")
    assert 1.0 < waited < 10  # it waited for the request, not for the whole drain period
    # Retired is cold: stopped, kept for a rollback (a start, not a create); discard removes it.
    kept = engine.client.containers.list(all=True, filters={"name": f"sb-{runtime.instance}-{project}-1-"})
    assert kept and all(k.status != "running" for k in kept)
    # The liveness sweep leaves a cold revision stopped (it restarts crashed routed replicas only).
    assert [f for f in runtime.check_liveness(project=project) if f.revision == "1"] == []
    kept = engine.client.containers.list(all=True, filters={"name": f"sb-{runtime.instance}-{project}-1-"})
    assert kept and all(k.status != "running" for k in kept)
    assert "r1-0" not in runtime.router.server_stats(project)
    observed = {o.revision: o.replicas for o in runtime.observe(project=project)}
    assert observed["1"] == 0 and observed["2"] == 1
    assert [r for r, n in observed.items() if n] == ["2"]
    runtime.discard_revision(project=project, revision="1")
    assert engine.client.containers.list(all=True, filters={"name": f"sb-{runtime.instance}-{project}-1-"}) == []
    assert "1" not in [o.revision for o in runtime.observe(project=project)]
    # Retiring again, or a revision that never existed, is not an error.
    runtime.retire_revision(project=project, revision="1")
    runtime.retire_revision(project=project, revision="99")
    assert get(runtime, project, "/version") == (200, hello["shas"]["2"] + "\n")


def test_set_traffic_refuses_revisions_without_replicas(runtime, hello):
    with pytest.raises(PermanentError, match="no running replicas"):
        runtime.set_traffic(project=hello["project"], weights={"1": 100})
    with pytest.raises(PermanentError, match="sum to 100"):
        runtime.set_traffic(project=hello["project"], weights={"2": 60})


def test_never_ready_revision_keeps_starting_with_a_clear_message(runtime, project_prefix, git_repo):
    """Readiness failures before the first success are a slow start, not a failure: the
    rollout's ready deadline (ready_timeout_seconds) judges them (issue 10, race 5)."""
    project = f"{project_prefix}-broken"
    sha = git_repo.commit_example("hello-broken")
    built = runtime.build(spec=BuildSpec(project=project, sha=sha, clone_url=git_repo.url), log=lambda line: None)
    runtime.start_revision(
        spec=RevisionSpec(project=project, revision="1", image=built.ref, sha=sha, readiness=READY_PROBE)
    )
    # Readiness failing before its first success is a slow start, not a failure: the
    # revision stays "starting" with the reason, and the rollout's ready deadline fails it.
    for _ in range(150):
        health = runtime.revision_health(project=project, revision="1")
        if "(3 times)" in health.message or health.state != HealthState.STARTING:
            break
        time.sleep(0.1)
    assert health.state == HealthState.STARTING
    assert "readiness /readyz returned 503 (3 times)" in health.message
    assert health.ready_replicas == 0
    runtime.retire_revision(project=project, revision="1")
    assert runtime.revision_health(project=project, revision="1").state == HealthState.FAILED


def test_build_failure_is_permanent_with_the_log_tail(runtime, project_prefix, git_repo):
    sha = git_repo.commit_files(
        {
            "Dockerfile": (
                "FROM localhost/switchback/busybox\nRUN echo preparing the thing\nRUN echo about to fail && exit 3\n"
            )
        }
    )
    spec = BuildSpec(project=f"{project_prefix}-failing", sha=sha, clone_url=git_repo.url)
    with pytest.raises(PermanentError) as info:
        runtime.build(spec=spec, log=lambda line: None)
    assert info.value.message.startswith("build failed:")
    assert "about to fail" in info.value.message


def test_unknown_commit_and_missing_image_are_permanent(runtime, project_prefix, git_repo):
    git_repo.commit_example("hello")
    spec = BuildSpec(project=f"{project_prefix}-x", sha="0" * 40, clone_url=git_repo.url)
    with pytest.raises(PermanentError):
        runtime.build(spec=spec, log=lambda line: None)
    with pytest.raises(PermanentError, match="image not found"):
        runtime.start_revision(
            spec=RevisionSpec(project=f"{project_prefix}-x", revision="1", image="localhost/nope:missing")
        )
