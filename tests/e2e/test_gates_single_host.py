"""Metric gates end to end on one host: real Podman, real HAProxy (its own per-server
counters through the Runtime API), the real engine, under load.

A revision answering 500 to 20% of its requests is rolled back by its gate while at its
first 10% step, and the stable revision's traffic never errs; a healthy revision is
promoted through its steps.
"""

from __future__ import annotations

import pytest

from deployments.models import DeploymentEvent, Project, State
from deployments.runtimes import _cache, runtime_cache_clear
from deployments.services import deployment_request, project_update
from tests.deployments.runtimes.single_host.helpers import Load
from tests.rollout import rollout_drive

pytestmark = [pytest.mark.containers, pytest.mark.haproxy, pytest.mark.django_db(transaction=True)]
FAST = {"probe_period_seconds": 0.2, "probe_timeout_seconds": 1.0, "probe_failure_threshold": 3,
        "ready_timeout_seconds": 30, "drain_seconds": 1, "keep_warm_seconds": 600, "watch_seconds": 0}
GATES = {"error_rate": True, "latency": True, "interval": 1, "failures": 2, "min_requests": 20}
FAILING = "failing on purpose (FAIL_PERCENT=20)"


@pytest.fixture
def platform(runtime):
    runtime_cache_clear()
    _cache[("single-host", "")] = runtime
    yield runtime
    runtime_cache_clear()


@pytest.fixture
def app(platform, project_prefix, git_repo, make_project):
    slug = f"{project_prefix}-gates"
    project = make_project(slug=slug, repository=f"acme/{slug}", clone_url=git_repo.url, **FAST)
    return project, git_repo


def test_bad_canary_rolled_back_by_its_gate_and_a_healthy_one_promoted(app, platform, user):
    project, repo = app
    sha1 = repo.commit_example("hello", "stable")
    d1 = rollout_drive(deployment_request(project=project, sha=sha1, actor=user), deadline=120, max_sleep=0.2)
    assert d1.state == State.SUCCEEDED, d1.failure_reason

    # The bad revision: 20% of its answers are 500s; a 10% first step held a minute.
    project = project_update(project=Project.objects.get(pk=project.pk), actor=user, env={"FAIL_PERCENT": "20"},
                             gates=GATES,
                             strategy={"steps": [{"weight": 10, "wait": 60}, {"weight": 50, "wait": 60}]})
    sha2 = repo.commit_example("hello", "bad")
    with Load(platform, project.slug, "/version", threads=4) as load:
        d2 = rollout_drive(deployment_request(project=project, sha=sha2, actor=user), deadline=120, max_sleep=0.2)
        load.wait_for(200)
    assert d2.state == State.FAILED, d2.failure_reason
    assert d2.failure_reason.startswith("Gate failed: error rate "), d2.failure_reason
    assert "threshold 2%" in d2.failure_reason
    traffic = list(DeploymentEvent.objects.filter(deployment=d2, kind=DeploymentEvent.Kind.TRAFFIC)
                   .values_list("message", flat=True))
    assert len(traffic) == 1 and traffic[0].startswith("Step 1/2: 10%")  # never past its first step
    assert platform.traffic(project.slug) == {"1": 100}
    # The stable revision never erred: every non-2xx answer came from the canary.
    assert not load.errors, load.errors[:3]
    assert load.non_2xx == load.bodies[FAILING] > 0
    assert set(load.bodies) <= {sha1, sha2, FAILING}
    assert load.bodies[sha1] > 0

    # A healthy revision goes through both steps and is promoted.
    project = project_update(project=Project.objects.get(pk=project.pk), actor=user, env={},
                             strategy={"steps": [{"weight": 10, "wait": 3}, {"weight": 50, "wait": 3}]})
    sha3 = repo.commit_example("hello", "good")
    with Load(platform, project.slug, "/version", threads=4) as load:
        d3 = rollout_drive(deployment_request(project=project, sha=sha3, actor=user), deadline=120, max_sleep=0.2)
        load.wait_for(100)
    assert d3.state == State.SUCCEEDED, d3.failure_reason
    assert load.non_2xx == 0 and not load.errors
    assert load.bodies[sha3] > 0
    gate_events = list(DeploymentEvent.objects.filter(deployment=d3, kind=DeploymentEvent.Kind.GATE)
                       .values_list("message", flat=True))
    assert sum(m.startswith("Gate passed") for m in gate_events) >= 2, gate_events  # one per step
