"""The same domain and engine on Kubernetes: merges, switch, rollback, through the real
client against the fake API server (no real API server can run here)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Deployment, State
from deployments.runtimes import runtime_cache_clear
from deployments.services import deployment_request, deployment_rollback
from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401  (a fixture)
from tests.rollout import rollout_drive

pytestmark = pytest.mark.django_db
REV = "switchback.dev/revision"


@pytest.fixture
def k8s(settings, kube_api):  # noqa: F811
    settings.SWITCHBACK = {**settings.SWITCHBACK,
                           "KUBERNETES": {"host": kube_api.url, "namespace": "default",
                                          "progress_deadline_seconds": 5}}
    runtime_cache_clear()
    yield kube_api
    runtime_cache_clear()


drive = rollout_drive


def test_merge_switch_and_instant_rollback_on_kubernetes(k8s, make_project, user):
    project = make_project(runtime="kubernetes", image_template="registry.example.com/hello:{sha}",
                           probe_period_seconds=0.1, replicas=2)
    first = drive(deployment_request(project=project, sha="a" * 40, actor=user))
    assert first.state == State.SUCCEEDED, first.failure_reason
    assert first.image == "registry.example.com/hello:" + "a" * 40
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "1"
    second = drive(deployment_request(project=project, sha="b" * 40, actor=user))
    assert second.state == State.SUCCEEDED, second.failure_reason
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "2"
    deployment = k8s.get("deployments", "default", "hello-r2")
    assert deployment["spec"]["replicas"] == 2
    assert "b" * 7 in deployment["metadata"]["annotations"]["kubernetes.io/change-cause"]

    k8s.requests.clear()
    rollback = drive(deployment_rollback(project=project, number=1, actor=user))
    assert rollback.state == State.SUCCEEDED and rollback.revision == "1"
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "1"
    assert not any(path.startswith("/apis/apps/v1/namespaces/default/deployments/hello-r3")
                   for _, path in k8s.requests)  # no new revision: the old one is reused


def test_never_ready_revision_leaves_traffic_on_the_stable_one(k8s, make_project, user):
    project = make_project(runtime="kubernetes", image_template="registry.example.com/hello:{sha}",
                           probe_period_seconds=0.1)
    assert drive(deployment_request(project=project, sha="a" * 40, actor=user)).state == State.SUCCEEDED
    k8s.behave("registry.example.com/hello:" + "c" * 40, "crashloop")
    failed = drive(deployment_request(project=project, sha="c" * 40, actor=user))
    assert failed.state == State.FAILED
    assert "CrashLoopBackOff" in failed.failure_reason
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "1"
    assert k8s.get("deployments", "default", "hello-r2") is None  # the failed revision is removed


def test_readiness_is_awaited_with_a_watch_not_a_polling_loop(k8s, make_project, user):
    k8s.controller.ready_delay = 1.5  # pods take a while: the engine must wait for them
    project = make_project(runtime="kubernetes", image_template="registry.example.com/hello:{sha}",
                           probe_period_seconds=0.1)
    k8s.requests.clear()
    deployment = drive(deployment_request(project=project, sha="a" * 40, actor=user))
    assert deployment.state == State.SUCCEEDED, deployment.failure_reason
    watches = [path for _, path in k8s.requests if "watch=" in path]
    reads = [path for method, path in k8s.requests
             if method == "GET" and "watch=" not in path and "/deployments/hello-r1" in path]
    assert watches  # the API server pushed the change
    assert len(reads) < 10  # a 100 ms polling loop would have read it about 15 times


def test_old_revision_is_scaled_to_zero_30_s_after_the_switch_by_default(
        k8s, make_project, user, monkeypatch, django_capture_on_commit_callbacks):
    from deployments import dispatch, tasks

    scheduled = []
    monkeypatch.setattr(dispatch, "revision_retire_send",
                        lambda project_id, revision, countdown: scheduled.append(([project_id, revision], countdown)))
    project = make_project(runtime="kubernetes", image_template="registry.example.com/hello:{sha}",
                           probe_period_seconds=0.1, replicas=2)  # keep_warm_seconds not given
    with django_capture_on_commit_callbacks(execute=True):
        drive(deployment_request(project=project, sha="a" * 40, actor=user))
        drive(deployment_request(project=project, sha="b" * 40, actor=user))
    assert scheduled == [([project.pk, "1"], 30)]
    assert k8s.get("deployments", "default", "hello-r1")["spec"]["replicas"] == 2  # still warm

    # What the worker runs 30 s later: r1 goes to zero replicas and is kept for a rollback.
    for number, ago in ((1, 40), (2, 31)):  # the clock moves on past the 30 s window
        live_at = timezone.now() - timedelta(seconds=ago)
        Deployment.objects.filter(project=project, number=number).update(live_at=live_at)
    tasks.revision_retire.run(project.pk, "1")
    assert k8s.get("deployments", "default", "hello-r1")["spec"]["replicas"] == 0
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "2"
    rollback = drive(deployment_rollback(project=project, number=1, actor=user))
    assert rollback.state == State.SUCCEEDED, rollback.failure_reason
    assert k8s.get("deployments", "default", "hello-r1")["spec"]["replicas"] == 2
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "1"


def test_a_scheduled_merge_is_warm_on_kubernetes_and_switches_the_selector_at_its_time(k8s, make_project, user):
    from deployments.models import DeploymentSchedule, Project
    from deployments.services import project_update
    from tests.rollout import rollout_drive_until_wait

    project = make_project(runtime="kubernetes", image_template="registry.example.com/hello:{sha}",
                           probe_period_seconds=0.1)
    assert drive(deployment_request(project=project, sha="a" * 40, actor=user)).state == State.SUCCEEDED
    later = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    project = project_update(project=Project.objects.get(pk=project.pk), actor=user,
                             strategy={"at": later, "tz": "UTC"})
    second = deployment_request(project=project, sha="b" * 40, actor=user)
    for _ in range(200):  # until it is ready and waits for its time (readiness comes by a watch)
        second = rollout_drive_until_wait(second)
        if second.state == State.SWITCHING:
            break
    assert second.state == State.SWITCHING, second.failure_reason
    assert k8s.get("deployments", "default", "hello-r2") is not None  # started and warm
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "1"  # not switched
    # The clock reaches the time (the row is what the engine reads at every step).
    DeploymentSchedule.objects.filter(deployment=second).update(at=timezone.now() - timedelta(milliseconds=1))
    assert rollout_drive_until_wait(second).state == State.SUCCEEDED
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "2"


def _reads_of(k8s, name, revision):
    """The warm check's reads of one revision: its Deployment, and its Pods by label."""
    return [(method, path) for method, path in k8s.requests if method == "GET" and (
        path.split("?")[0].endswith(f"/deployments/{name}-r{revision}")
        or ("/pods?" in path and f"revision%3D{revision}" in path))]


@pytest.fixture
def two_live(k8s, make_project, user):
    """A staff user's Kubernetes project with #1 and #2 deployed, both kept warm."""
    user.is_staff = True
    user.save()
    project = make_project(runtime="kubernetes", image_template="registry.example.com/hello:{sha}",
                           probe_period_seconds=0.1, keep_warm_seconds=3600)
    for sha in ("a" * 40, "b" * 40):
        assert drive(deployment_request(project=project, sha=sha, actor=user)).state == State.SUCCEEDED
    return project


def test_a_warm_rollback_through_the_api_reads_its_target_once_then_switches(k8s, two_live, api):
    """The request's warm check reads the target's Deployment and Pods once (the worker is
    not handed a second check); the switch follows within the request."""
    k8s.requests.clear()
    response = api.post("/api/projects/hello/deployments/1/rollback/")
    assert response.status_code == 202 and response.json()["state"] == "succeeded"
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "1"
    reads = _reads_of(k8s, "hello", 1)
    assert len([r for r in reads if "/deployments/" in r[1]]) == 1
    assert len([r for r in reads if "/pods?" in r[1]]) == 1


def test_a_rollback_whose_target_is_not_ready_is_left_to_the_worker(k8s, two_live, api):
    """The request's warm check proves readiness: a target scaled to zero (retired) is not
    switched to within the request; the worker starts it again."""
    from deployments.runtimes import runtime_for

    runtime_for(runtime="kubernetes").kube.scale("hello-r1", 0)
    response = api.post("/api/projects/hello/deployments/1/rollback/")
    assert response.status_code == 202 and response.json()["state"] == "queued"
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "2"  # untouched
    rollback = drive(Deployment.objects.get(project=two_live, number=response.json()["number"]))
    assert rollback.state == State.SUCCEEDED, rollback.failure_reason
    assert k8s.get("services", "default", "hello")["spec"]["selector"][REV] == "1"
