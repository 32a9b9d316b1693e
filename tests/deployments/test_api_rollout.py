# ruff: noqa: F811 - pytest fixtures imported from tests.dashboard.people are parameters here
"""Acting on rollouts through the API (promote, abort), members, audit, metrics, write-only env."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from deployments.models import AuditEntry, Deployment, Project, State, Trigger
from deployments.services import deployment_request
from tests.dashboard.people import history_make, people, project  # noqa: F401 - fixtures
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db


drive = rollout_drive_until_wait


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def canary(project, people, memory_runtime, django_capture_on_commit_callbacks):
    """#1 live; #2 holding 10% of traffic until promoted."""
    Project.objects.filter(pk=project.pk).update(strategy={"steps": [{"weight": 10, "wait": None}]})
    project.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):
        drive(deployment_request(project=project, sha="a" * 40, actor=people["deployer"]))
        second = drive(deployment_request(project=project, sha="b" * 40, actor=people["deployer"]))
    assert second.state == State.SWITCHING
    assert memory_runtime.weights["hello"] == {"2": 10, "1": 90}
    return second


def test_promote_moves_a_held_canary_on(canary, people, memory_runtime, django_capture_on_commit_callbacks):
    assert client_for(people["viewer"]).post("/api/projects/hello/deployments/2/promote/").status_code == 403
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(people["deployer"]).post("/api/projects/hello/deployments/2/promote/")
    assert response.status_code == 202, response.json()
    assert len(callbacks) == 1  # the next step is enqueued once committed
    assert drive(canary).state == State.SUCCEEDED
    assert memory_runtime.weights["hello"] == {"2": 100}
    entry = AuditEntry.objects.get(action="deployment.promote")
    assert entry.actor == people["deployer"] and entry.data == {"deployment": 2, "step": 1, "weight": 10}
    again = client_for(people["deployer"]).post("/api/projects/hello/deployments/2/promote/")
    assert again.status_code == 409 and "nothing to promote" in again.json()["message"]


def test_abort_returns_traffic_to_the_live_revision(canary, people, memory_runtime, project):
    response = client_for(people["deployer"]).post("/api/projects/hello/deployments/2/abort/")
    assert response.status_code == 202, response.json()
    canary.refresh_from_db()
    assert canary.state == State.FAILED and canary.failure_reason == "Aborted by deployer"
    assert memory_runtime.weights["hello"] == {"1": 100}
    assert ("hello", "2") not in memory_runtime.running
    project.refresh_from_db()
    assert project.live_deployment.number == 1
    entry = AuditEntry.objects.get(action="deployment.abort")
    assert entry.data == {"deployment": 2, "state": "switching", "live": 1}
    again = client_for(people["deployer"]).post("/api/projects/hello/deployments/2/abort/")
    assert again.status_code == 409 and "already finished" in again.json()["message"]


def test_abort_a_queued_deployment(project, people, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        deployment_request(project=project, sha="c" * 40, actor=people["deployer"])
    response = client_for(people["admin"]).post("/api/projects/hello/deployments/1/abort/")
    assert response.status_code == 202 and response.json()["state"] == "failed"


def test_promote_and_abort_from_the_dashboard_panel(canary, people, client, memory_runtime,
                                                    django_capture_on_commit_callbacks):
    client.force_login(people["deployer"])
    panel = client.get("/projects/hello/deployments/2/rollout/", HTTP_HX_REQUEST="true").content.decode()
    assert "Promote" in panel and "Abort" in panel and "held until promoted" in panel
    assert "rev 2: 10%" in panel and "live: 90%" in panel
    response = client.post("/projects/hello/deployments/2/abort/", HTTP_HX_REQUEST="true",
                           HTTP_HX_TARGET="rollout-panel")
    assert response.status_code == 286  # final: the panel stops polling
    assert "Aborted by deployer" in response.content.decode()
    assert memory_runtime.weights["hello"] == {"1": 100}


def test_members_api(project, people):
    admin = client_for(people["admin"])
    added = admin.post("/api/projects/hello/members/", {"username": "stranger", "role": "deployer"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "deployer"
    listed = {m["username"]: m["role"] for m in admin.get("/api/projects/hello/members/").json()}
    assert listed == {"viewer": "viewer", "deployer": "deployer", "admin": "admin", "stranger": "deployer"}
    assert admin.patch("/api/projects/hello/members/stranger/", {"role": "viewer"}, format="json").json()["role"] \
        == "viewer"
    assert admin.delete("/api/projects/hello/members/stranger/").status_code == 204
    assert admin.delete("/api/projects/hello/members/stranger/").status_code == 404
    assert admin.post("/api/projects/hello/members/", {"username": "ghost", "role": "viewer"},
                      format="json").status_code == 404
    bad = admin.post("/api/projects/hello/members/", {"username": "viewer", "role": "owner"}, format="json")
    assert bad.status_code == 400 and "role" in bad.json()["message"]
    last = admin.delete("/api/projects/hello/members/admin/")
    assert last.status_code == 409 and "last admin" in last.json()["message"]
    actions = [e["action"] for e in admin.get("/api/projects/hello/audit/").json()["results"]]
    assert actions[:3] == ["member.remove", "member.role", "member.add"]


def test_env_is_write_only_in_the_api(project, people):
    admin = client_for(people["admin"])
    response = admin.patch("/api/projects/hello/", {"env": {"API_KEY": "hunter2", "PORT": 8080}}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert "env" not in body and body["env_names"] == ["API_KEY", "PORT"] and "hunter2" not in str(body)
    bad = admin.patch("/api/projects/hello/", {"env": {"not a name": "x"}}, format="json")
    assert bad.status_code == 400 and "variable name" in bad.json()["message"]
    project.refresh_from_db()
    d = Deployment.objects.create(project=project, number=1, commit_sha="a" * 40, trigger="api",
                                  config=project.runtime_config())
    detail = admin.get(f"/api/projects/hello/deployments/{d.number}/").json()
    assert detail["config"]["env"] == {"API_KEY": "********", "PORT": "********"}
    audit = admin.get("/api/projects/hello/audit/").json()["results"][0]
    assert audit["action"] == "project.update" and "hunter2" not in str(audit)


def test_dora_metrics(project, people, make_project):
    now = timezone.now()
    history_make(project, 6, live=6, start=now - timedelta(days=3))
    # #4 went live and was rolled back by #5; #6 is a later change.
    Deployment.objects.filter(project=project, number=5).update(trigger=Trigger.ROLLBACK)
    Deployment.objects.filter(project=project, number=3).update(
        state=State.FAILED, failure_reason="Failed after going live: liveness")
    metrics = client_for(people["viewer"]).get("/api/projects/hello/metrics/?days=7").json()
    assert metrics["changes"] == 5 and metrics["rollbacks"] == 1
    assert metrics["failures"] == 2 and metrics["change_failure_rate"] == pytest.approx(0.4)
    # #4 live at start+4h+31s, #5 (its rollback) at start+5h+31s: an hour to restore.
    assert metrics["time_to_restore_median"] == pytest.approx(3600)
    assert len(metrics["daily"]) == 7 and sum(d["deploys"] for d in metrics["daily"]) == 5
    assert metrics["lead_time_median"] > 0 and "Commit timestamps" in metrics["notes"]["lead_time"]
    assert client_for(people["viewer"]).get("/api/projects/hello/metrics/?days=0").status_code == 400
    overall = client_for(people["stranger"]).get("/api/metrics/").json()
    assert overall["changes"] == 0
    assert client_for(people["staff"]).get("/api/metrics/?days=30").json()["changes"] == 5
    page = APIClient()
    page.force_login(people["viewer"])
    html = page.get("/projects/hello/insights/?days=7").content.decode()
    assert "<svg" in html and 'id="m-cfr">40%' in html
