"""The platform end to end on one host: real Podman, real HAProxy, the real engine.

Merges become built images and live revisions; rollbacks (warm and cold) reroute at
once; failures leave traffic where it was; a revision failing liveness after the switch
is rolled back; concurrent merges collapse to the newest; a worker killed mid-rollout
leaves nothing the sweep and the reconciler cannot converge.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from deployments import watch
from deployments.models import Deployment, Installation, Project, State
from deployments.reconciler import reconcile_project
from deployments.runtimes import _cache, runtime_cache_clear
from deployments.services import deployment_from_webhook, deployment_request, deployment_rollback, outbox_sweep
from tests.deployments.runtimes.single_host.helpers import Load, get
from tests.rollout import retire_after_warm_window, rollout_drive

pytestmark = [pytest.mark.containers, pytest.mark.haproxy, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
FAST = {"probe_period_seconds": 0.2, "probe_timeout_seconds": 1.0, "probe_failure_threshold": 3,
        "ready_timeout_seconds": 30, "drain_seconds": 1, "keep_warm_seconds": 600, "watch_seconds": 0}


@pytest.fixture
def platform(runtime):
    """The engine uses the session's real single-host runtime."""
    runtime_cache_clear()
    _cache[("single-host", "")] = runtime
    yield runtime
    runtime_cache_clear()


@pytest.fixture
def app(platform, project_prefix, git_repo, make_project, request):
    slug = f"{project_prefix}-{request.node.name[5:20].replace('_', '-').strip('-')}"
    project = make_project(slug=slug, repository=f"acme/{slug}", clone_url=git_repo.url, **FAST)
    return project, git_repo


def drive(deployment, deadline: float = 90) -> Deployment:
    return rollout_drive(deployment, deadline=deadline, max_sleep=0.2)


def version(runtime, project: Project) -> str:
    status, body = get(runtime, project.slug, "/version")
    assert status == 200, body
    return body.strip()


def test_deploys_switch_and_rollbacks_warm_and_cold(app, platform, user):
    project, repo = app
    sha1 = repo.commit_example("hello", "one")
    d1 = drive(deployment_request(project=project, sha=sha1, actor=user))
    assert d1.state == State.SUCCEEDED, d1.failure_reason
    assert version(platform, project) == sha1
    assert d1.events.filter(kind="log").exists()  # the build log streamed into the timeline

    sha2 = repo.commit_example("hello", "two")
    with Load(platform, project.slug, threads=4) as load:
        load.wait_for(20)
        d2 = drive(deployment_request(project=project, sha=sha2, actor=user))
        load.wait_for(20)
    assert d2.state == State.SUCCEEDED, d2.failure_reason
    assert version(platform, project) == sha2
    assert load.non_2xx == 0 and load.errors == [], (load.statuses, load.errors[:3])
    assert set(load.bodies) <= {sha1, sha2}

    # Warm rollback: revision 1 still runs; nothing is built or started anew.
    r1 = drive(deployment_rollback(project=project, number=1, actor=user))
    assert r1.state == State.SUCCEEDED and r1.revision == "1"
    assert version(platform, project) == sha1
    assert not r1.events.filter(message="Building.").exists()

    # Cold rollback: revision 2 is retired, then started again from its stored image.
    assert retire_after_warm_window(project=project, revision="2")
    # Retired and kept: stopped, not removed (the cold rollback starts it, no create).
    assert [o.replicas for o in platform.observe(project=project.slug) if o.revision == "2"] == [0]
    r2 = drive(deployment_rollback(project=project, number=2, actor=user))
    assert r2.state == State.SUCCEEDED, r2.failure_reason
    assert r2.image == d2.image and not r2.events.filter(message="Building.").exists()
    assert version(platform, project) == sha2


def test_build_failure_leaves_traffic_where_it_was(app, platform, user):
    project, repo = app
    sha1 = repo.commit_example("hello", "good")
    first = drive(deployment_request(project=project, sha=sha1, actor=user))
    assert first.state == State.SUCCEEDED, first.failure_reason
    bad = repo.commit_files({"Dockerfile": "FROM localhost/switchback/busybox\nRUN echo compiling && exit 3\n"})
    failed = drive(deployment_request(project=project, sha=bad, actor=user))
    assert failed.state == State.FAILED
    assert "build failed" in failed.failure_reason.lower() and "compiling" in failed.failure_reason
    assert version(platform, project) == sha1
    assert Project.objects.get(pk=project.pk).live_deployment.number == 1


def test_never_ready_revision_fails_and_is_removed(app, platform, user):
    project, repo = app
    sha1 = repo.commit_example("hello", "good")
    assert drive(deployment_request(project=project, sha=sha1, actor=user)).state == State.SUCCEEDED
    Project.objects.filter(pk=project.pk).update(ready_timeout_seconds=4)
    broken = repo.commit_example("hello-broken")
    failed = drive(deployment_request(project=Project.objects.get(pk=project.pk), sha=broken, actor=user))
    assert failed.state == State.FAILED
    assert "readiness /readyz returned 503" in failed.failure_reason
    assert version(platform, project) == sha1
    assert [o.revision for o in platform.observe(project=project.slug)] == ["1"]


def test_liveness_failure_after_the_switch_rolls_back(app, platform, user):
    project, repo = app
    sha1 = repo.commit_example("hello", "good")
    assert drive(deployment_request(project=project, sha=sha1, actor=user)).state == State.SUCCEEDED
    # The next revision passes startup and readiness but its liveness endpoint is missing.
    Project.objects.filter(pk=project.pk).update(liveness_probe_path="/no-such-path", watch_seconds=60,
                                                 startup_probe_path="/healthz")
    sha2 = repo.commit_example("hello", "two")
    d2 = drive(deployment_request(project=Project.objects.get(pk=project.pk), sha=sha2, actor=user))
    assert d2.state == State.SUCCEEDED and version(platform, project) == sha2
    end = time.monotonic() + 30
    while time.monotonic() < end and watch.rollout_watch_step(deployment_id=d2.pk) is not None:
        time.sleep(0.2)
    d2.refresh_from_db()
    assert d2.state == State.FAILED and "liveness /no-such-path returned 404" in d2.failure_reason
    rollback = Deployment.objects.get(project=project, number=3)
    assert rollback.trigger == "rollback" and rollback.rollback_of.number == 1
    assert drive(rollback).state == State.SUCCEEDED
    assert version(platform, project) == sha1


def test_concurrent_merges_deploy_only_the_newest(app, platform):
    project, repo = app
    shas = [repo.commit_example("hello", f"merge {i}") for i in range(3)]
    from django.db import transaction

    made = []
    for sha in shas:  # three merges land before any worker picks one up
        with transaction.atomic():
            made.append(deployment_from_webhook(project=project, sha=sha, trigger="merge", message=sha,
                                                author="mona", sender="mona")[0])
    states = dict(Deployment.objects.filter(project=project).values_list("number", "state"))
    assert states == {1: "superseded", 2: "superseded", 3: "queued"}
    assert drive(made[0]).state == State.SUPERSEDED  # a stale task does nothing
    newest = drive(made[2])
    assert newest.state == State.SUCCEEDED, newest.failure_reason
    assert version(platform, project) == shas[2]


def _worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
                             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_worker_killed_mid_rollout_converges(app, platform, user, redis_client, session_dir):
    project, repo = app
    sha1 = repo.commit_example("hello", "one")
    assert drive(deployment_request(project=project, sha=sha1, actor=user)).state == State.SUCCEEDED
    # Slow to become ready, so the kill lands while the rollout is verifying.
    Project.objects.filter(pk=project.pk).update(probe_initial_delay_seconds=4)
    sha2 = repo.commit_example("hello", "two")
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           # The broker this test process publishes to (REDIS_URL may isolate the run).
           "REDIS_URL": django_settings.CELERY_BROKER_URL, "DOCKER_HOST": platform.engine_url,
           "SWITCHBACK_SINGLE_HOST_DIR": platform.state_dir, "SWITCHBACK_APPS_BIND": platform.router.bind}
    # The worker's runtime is this installation's: the same id as the session's runtime.
    Installation.objects.update_or_create(pk=1, defaults={"instance_id": platform.instance})
    worker = _worker(env)
    try:
        d2 = deployment_request(project=Project.objects.get(pk=project.pk), sha=sha2, actor=user)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            d2.refresh_from_db()
            if d2.state == State.VERIFYING:
                break
            time.sleep(0.05)
        assert d2.state == State.VERIFYING
        os.killpg(worker.pid, signal.SIGKILL)  # no warm shutdown, no ack
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    time.sleep(1)
    d2.refresh_from_db()
    assert d2.state == State.VERIFYING  # nobody advances it now
    assert version(platform, project) == sha1  # traffic still on the live revision

    worker = _worker(env)
    try:
        assert outbox_sweep(stale_after=0) == 1  # the stalled rollout is handed out again
        end = time.monotonic() + 60
        while time.monotonic() < end and not d2.is_final:
            time.sleep(0.2)
            d2.refresh_from_db()
        assert d2.state == State.SUCCEEDED, d2.failure_reason
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(20)
    # After a crash the reconciled state is what counts; allow HAProxy a moment to settle
    # (zero-downtime switching itself is asserted above and measured in bench/).
    end = time.monotonic() + 5
    while get(platform, project.slug, "/version")[1].strip() != sha2 and time.monotonic() < end:
        time.sleep(0.1)
    assert version(platform, project) == sha2, platform.router.server_stats(project.slug)
    # Converged: one revision's replicas per wanted revision, HAProxy on live containers only.
    reconcile_project(project=project)
    observed = {o.revision: o for o in platform.observe(project=project.slug)}
    assert observed["2"].weight == 100 and observed["2"].replicas == 1
    assert set(observed) <= {"1", "2"}  # 1 is kept warm for rollback, nothing else
    assert reconcile_project(project=project) == []
