# ruff: noqa: F811 - pytest fixtures imported from tests.dashboard.people are parameters here
"""Schedules, deploy windows and promote-all through the API and the dashboard: hostile
input is a 4xx with a message, never a 500."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from deployments.models import AuditEntry, DeploymentSchedule, Project, State
from deployments.services import deployment_request
from tests.dashboard.people import people, project  # noqa: F401 - fixtures
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db
drive = rollout_drive_until_wait
URL = "/api/projects/hello/"


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def clock(monkeypatch):
    state = {"now": datetime(2026, 12, 1, 10, 0, tzinfo=UTC)}
    monkeypatch.setattr("django.utils.timezone.now", lambda: state["now"])
    return state


@pytest.fixture
def scheduled(project, people, memory_runtime, clock, django_capture_on_commit_callbacks):
    """#1 live; #2 ready and warm, switching at 2026-12-01 15:00 Berlin (14:00 UTC)."""
    with django_capture_on_commit_callbacks(execute=False):
        drive(deployment_request(project=project, sha="a" * 40, actor=people["deployer"]))
        Project.objects.filter(pk=project.pk).update(strategy={"at": "2026-12-01T15:00", "tz": "Europe/Berlin"})
        project.refresh_from_db()
        second = drive(deployment_request(project=project, sha="b" * 40, actor=people["deployer"]))
    assert second.state == State.SWITCHING
    return second


def test_a_past_scheduled_strategy_is_refused_with_a_message(project, people, clock):
    admin = client_for(people["admin"])
    response = admin.patch(URL, {"strategy": {"at": "2026-12-01T09:00", "tz": "UTC"}}, format="json")
    assert response.status_code == 400 and "in the past" in response.json()["message"]
    gap = admin.patch(URL, {"strategy": {"at": "2027-03-28T02:30", "tz": "Europe/Berlin"}}, format="json")
    assert gap.status_code == 400 and "does not exist" in str(gap.json())
    ok = admin.patch(URL, {"strategy": {"at": "2026-12-03T14:00", "tz": "Europe/Berlin"}}, format="json")
    assert ok.status_code == 200 and ok.json()["strategy"] == {"at": "2026-12-03T14:00", "tz": "Europe/Berlin"}
    clock["now"] += timedelta(days=7)  # the stored time has passed: other settings still save
    assert admin.patch(URL, {"replicas": 2}, format="json").status_code == 200


@pytest.mark.parametrize("window", [{"tz": "../../etc/passwd"}, {"days": "mon"}, {"from": {"$gt": ""}},
                                    {"freeze": [[["2026-12-24"]]]}, "always", [1, 2]])
def test_hostile_deploy_windows_are_400_with_a_message(project, people, window):
    response = client_for(people["admin"]).patch(URL, {"deploy_window": window}, format="json")
    assert response.status_code == 400 and response.json()["message"]


def test_a_deploy_window_round_trips(project, people):
    window = {"tz": "Europe/Berlin", "days": ["fri", "mon"], "from": "09:00", "to": "17:00",
              "freeze": ["2026-12-24"]}
    response = client_for(people["admin"]).patch(URL, {"deploy_window": window}, format="json")
    assert response.status_code == 200
    assert response.json()["deploy_window"] == {"tz": "Europe/Berlin", "days": ["mon", "fri"], "from": "09:00",
                                                "to": "17:00", "freeze": [{"from": "2026-12-24",
                                                                           "to": "2026-12-24", "reason": ""}]}
    assert client_for(people["deployer"]).patch(URL, {"deploy_window": {}}, format="json").status_code == 403


def test_the_schedule_and_why_it_waits_show_in_the_api(scheduled, people):
    body = client_for(people["viewer"]).get(URL + "deployments/2/").json()
    assert body["schedule"]["local_time"] == "2026-12-01T15:00" and body["schedule"]["tz"] == "Europe/Berlin"
    assert body["schedule"]["at"] == "2026-12-01T14:00:00+00:00" and body["schedule"]["fired_at"] is None
    assert body["waiting"]["kind"] == "schedule" and body["waiting"]["until"] == "2026-12-01T14:00:00+00:00"
    assert "switches at the scheduled time" in body["waiting"]["message"]
    listed = client_for(people["viewer"]).get(URL + "deployments/").json()["results"]
    assert listed[0]["waiting"]["kind"] == "schedule" and listed[1]["waiting"] is None


@pytest.mark.parametrize("body, status, message", [
    ({"at": "2026-12-01T09:00", "tz": "UTC"}, 400, "in the past"),
    ({"at": "2026-12-02T09:00", "tz": "Nowhere/Land"}, 400, "unknown time zone"),
    ({"at": "next tuesday"}, 400, "local date and time"),
    ({"tz": "UTC"}, 400, "at"),
    ([1, 2], 400, ""),
    ({"at": "2026-12-02T09:00", "tz": "UTC", "extra": 1}, 200, ""),  # unknown keys are dropped by the serializer
])
def test_changing_the_schedule_validates_its_input(scheduled, people, body, status, message):
    response = client_for(people["deployer"]).put(URL + "deployments/2/schedule/", body, format="json")
    assert response.status_code == status, response.json()
    if status == 400:
        assert message in str(response.json()) and "message" in response.json()


def test_changing_the_schedule_is_audited_and_viewers_may_not(scheduled, people):
    assert client_for(people["viewer"]).put(URL + "deployments/2/schedule/", {"at": "2026-12-02T09:00"},
                                            format="json").status_code == 403
    response = client_for(people["deployer"]).put(URL + "deployments/2/schedule/",
                                                  {"at": "2026-12-02T09:00", "tz": "America/New_York"},
                                                  format="json")
    assert response.status_code == 200 and response.json()["schedule"]["at"] == "2026-12-02T14:00:00+00:00"
    entry = AuditEntry.objects.get(action="deployment.schedule")
    assert entry.actor == people["deployer"] and entry.data["tz"] == "America/New_York"
    assert DeploymentSchedule.objects.get(deployment=scheduled).changed_by_name == "deployer"


def test_promote_brings_the_schedule_forward(scheduled, people, memory_runtime):
    response = client_for(people["deployer"]).post(URL + "deployments/2/promote/", {"full": True}, format="json")
    assert response.status_code == 202, response.json()
    assert drive(scheduled).state == State.SUCCEEDED and memory_runtime.weights["hello"] == {"2": 100}


def test_override_needs_a_reason(project, people, memory_runtime, clock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        drive(deployment_request(project=project, sha="a" * 40, actor=people["deployer"]))
        Project.objects.filter(pk=project.pk).update(deploy_window={"tz": "UTC", "days": ["sun"], "from": "00:00",
                                                                    "to": "24:00", "freeze": []})
        project.refresh_from_db()
        second = drive(deployment_request(project=project, sha="b" * 40, actor=people["deployer"]))
    deployer = client_for(people["deployer"])
    body = deployer.get(URL + "deployments/2/").json()
    assert body["waiting"]["kind"] == "window" and body["waiting"]["until"] == "2026-12-06T00:00:00+00:00"
    refused = deployer.post(URL + "deployments/2/promote/")
    assert refused.status_code == 409 and "override" in refused.json()["message"]
    for bad in ({}, {"reason": ""}, {"reason": "x" * 301}, ["reason"]):
        assert deployer.post(URL + "deployments/2/override-window/", bad, format="json").status_code == 400
    response = deployer.post(URL + "deployments/2/override-window/", {"reason": "security fix"}, format="json")
    assert response.status_code == 202
    assert drive(second).state == State.SUCCEEDED


def test_the_dashboard_says_why_it_waits_and_when_it_goes(scheduled, people, client):
    client.force_login(people["deployer"])
    page = client.get("/projects/hello/").content.decode()
    assert "Waiting for the scheduled time" in page and "2026-12-01T15:00 Europe/Berlin" in page
    assert "Switch now" in page and "Reschedule" in page
    response = client.post("/projects/hello/deployments/2/schedule/", {"at": "2026-12-02T09:00", "tz": "UTC"})
    assert response.status_code == 302
    assert DeploymentSchedule.objects.get(deployment=scheduled).at == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    response = client.post("/projects/hello/deployments/2/schedule/", {"at": "yesterday", "tz": "UTC"})
    assert response.status_code < 500
