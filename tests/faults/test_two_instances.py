"""Two installations on one container engine, each with a project of the same slug.

Each serves its own app through its own HAProxy; reconciling (observe, retire) and
stopping one leaves the other's containers and traffic untouched.  Before installation
ids, B's HAProxy served A's container and stopping B removed A's container (issue 11).
"""

from __future__ import annotations

import os

import pytest

from deployments.runtimes.base import BuildSpec, Probe, RevisionSpec
from deployments.runtimes.single_host import SingleHostRuntime
from deployments.runtimes.single_host.containers import list_replicas, remove_container
from tests.deployments.runtimes.single_host.helpers import get, wait_health
from tests.single_host_fixtures import free_port

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]

READY = Probe(path="/readyz", period_seconds=0.2, timeout_seconds=1, failure_threshold=3)


@pytest.fixture
def two_instances(engine, session_dir, project_prefix, tmp_path):
    runtimes = {
        name: SingleHostRuntime(engine.url, state_dir=os.path.join(session_dir, f"inst-{name}-{tmp_path.name[-6:]}"),
                                haproxy_bind=f"127.0.0.1:{free_port()}", instance=f"{project_prefix}{name}")
        for name in ("a", "b")
    }
    yield runtimes
    for rt in runtimes.values():
        for container in list_replicas(engine.client, instance=rt.instance):
            remove_container(container, stop_timeout=0)
        rt.close(stop_router=True)


def test_same_slug_on_two_instances_each_serves_and_stops_its_own(two_instances, engine, project_prefix, git_repo):
    a, b = two_instances["a"], two_instances["b"]
    project = f"{project_prefix}-same"
    sha = git_repo.commit_example("hello", "same")
    image = a.build(spec=BuildSpec(project=project, sha=sha, clone_url=git_repo.url), log=lambda line: None).ref
    # Same slug, same revision number; each instance's app reports its own commit.
    commits = {"a": "a" * 40, "b": "b" * 40}
    for name, rt in two_instances.items():
        rt.start_revision(spec=RevisionSpec(project=project, revision="1", image=image, sha=commits[name],
                                            readiness=READY))
        assert wait_health(rt, project, "1").state.value == "ready"
        rt.set_traffic(project=project, weights={"1": 100})
    for name, rt in two_instances.items():
        assert get(rt, project, "/version") == (200, commits[name] + "\n")
        (observed,) = rt.observe(project=project)
        assert (observed.revision, observed.replicas, observed.weight) == ("1", 1, 100)
    a_containers = {c.id for c in list_replicas(engine.client, project, instance=a.instance)}
    b_containers = {c.id for c in list_replicas(engine.client, project, instance=b.instance)}
    assert len(a_containers) == len(b_containers) == 1 and a_containers != b_containers

    # B retires its revision (what its reconciler does with a revision nobody owns) and
    # stops its apps (manage.py apps_stop lists containers the same way).
    b.retire_revision(project=project, revision="1")
    for container in list_replicas(engine.client, instance=b.instance):
        remove_container(container)
    b.router.stop()

    assert {c.id for c in list_replicas(engine.client, project, instance=a.instance)} == a_containers
    assert all(c.status == "running" for c in list_replicas(engine.client, project, instance=a.instance))
    assert list_replicas(engine.client, project, instance=b.instance) == []
    assert get(a, project, "/version") == (200, commits["a"] + "\n")
    assert a.traffic(project) == {"1": 100}


def test_same_slug_on_two_instances_builds_and_prunes_only_its_own_images(two_instances, engine, project_prefix,
                                                                         git_repo):
    """Images are named per installation: B neither reuses A's build of a commit nor prunes it."""
    from deployments.runtimes.single_host.images import find_image

    a, b = two_instances["a"], two_instances["b"]
    project = f"{project_prefix}-imgs"
    first = git_repo.commit_example("hello", "first")
    second = git_repo.commit_example("hello", "second")
    a_image = a.build(spec=BuildSpec(project=project, sha=first, clone_url=git_repo.url), log=lambda line: None)
    b_first = b.build(spec=BuildSpec(project=project, sha=first, clone_url=git_repo.url), log=lambda line: None)
    assert b_first.ref != a_image.ref and not b_first.reused
    # B's next build keeps only its second commit: its own first image goes, A's stays.
    lines: list[str] = []
    b.build(spec=BuildSpec(project=project, sha=second, clone_url=git_repo.url, keep_shas=frozenset({second})),
            log=lines.append)
    assert any(line.startswith("pruned image") for line in lines), lines
    assert find_image(engine.client, b_first.ref) is None
    assert find_image(engine.client, a_image.ref) is not None
