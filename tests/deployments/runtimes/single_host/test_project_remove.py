"""Archiving a project on the single host (real Podman and HAProxy): every revision's
containers, the project's HAProxy backend and host mapping, its images and its network go."""

from __future__ import annotations

import pytest

from deployments.runtimes.base import BuildSpec, HealthState, Probe, RevisionSpec
from deployments.runtimes.single_host import containers as c

from .helpers import get, wait_health

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]

READY = Probe(path="/readyz", period_seconds=0.2, timeout_seconds=1, failure_threshold=3)


def test_project_remove_takes_everything_of_that_project_only(runtime, engine, project_prefix, tmp_path):
    from tests.single_host_fixtures import GitRepo

    repo = GitRepo(str(tmp_path))
    sha = repo.commit_example("hello", "gone")
    doomed, kept = f"{project_prefix}-doomed", f"{project_prefix}-kept"
    for project in (doomed, kept):
        built = runtime.build(spec=BuildSpec(project=project, sha=sha, clone_url=repo.url), log=lambda _line: None)
        for revision in ("1", "2"):
            runtime.start_revision(spec=RevisionSpec(project=project, revision=revision, image=built.ref, sha=sha,
                                                     readiness=READY))
            assert wait_health(runtime, project, revision).state == HealthState.READY
        runtime.set_traffic(project=project, weights={"2": 100})
    runtime.retire_revision(project=doomed, revision="1")  # one cold (stopped) revision too
    assert get(runtime, doomed, "/version")[0] == 200

    removed = runtime.project_remove(project=doomed)

    assert "route" in removed and any(item.startswith("image ") for item in removed), removed
    assert c.list_replicas(engine.client, doomed, instance=runtime.instance) == []
    assert runtime.observe(project=doomed) == []
    assert doomed not in runtime.router.load_state().projects
    assert get(runtime, doomed, "/")[0] == 404  # HAProxy no longer knows the host
    assert engine.client.images.list(filters={"label": f"switchback.project={doomed}"}) == []
    # The other project is untouched.
    assert get(runtime, kept, "/version") == (200, sha + "\n")
    assert len(c.list_replicas(engine.client, kept, instance=runtime.instance)) == 2
    assert runtime.project_remove(project=doomed) == []  # idempotent
