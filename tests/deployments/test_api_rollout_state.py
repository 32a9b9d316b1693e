# ruff: noqa: F811 - pytest fixtures imported from tests.dashboard.people are parameters here
"""GET …/deployments/<n>/rollout/: phases, split, steps, hold, and only the events after a cursor."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from deployments.models import Project, State
from deployments.services import deployment_request
from tests.dashboard.people import people, project  # noqa: F401 - fixtures
from tests.rollout import rollout_drive_until_wait as drive

pytestmark = pytest.mark.django_db


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def held(project, people, memory_runtime, django_capture_on_commit_callbacks):
    Project.objects.filter(pk=project.pk).update(strategy={"steps": [{"weight": 10, "wait": None},
                                                                     {"weight": 50, "wait": 30}]})
    project.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):
        drive(deployment_request(project=project, sha="a" * 40, actor=people["deployer"]))
        second = drive(deployment_request(project=project, sha="b" * 40, actor=people["deployer"]))
    assert second.state == State.SWITCHING
    return second


def test_a_held_canary_reports_its_split_steps_and_hold(held, people):
    url = "/api/projects/hello/deployments/2/rollout/"
    body = client_for(people["viewer"]).get(url).json()
    assert body["state"] == "switching" and body["holding"] is True and body["is_final"] is False
    assert body["weights"] == {"2": 10, "1": 90}
    assert body["steps"] == [{"weight": 10, "wait": None}, {"weight": 50, "wait": 30.0}]
    assert body["step"] == 0 and body["waiting_step"] == 0 and body["step_until"] is None
    assert [p["key"] for p in body["phases"]] == ["build", "start", "probes", "switch"]
    assert [p["status"] for p in body["phases"]] == ["done", "done", "done", "current"]
    assert any(e["kind"] == "traffic" and "held until promoted" in e["message"] for e in body["events"])
    ids = [e["id"] for e in body["events"]]
    assert ids == sorted(ids) and body["last_event_id"] == ids[-1]

    # The cursor: nothing new after the last id; a limit pages through the rest.
    again = client_for(people["viewer"]).get(url, {"after": body["last_event_id"]}).json()
    assert again["events"] == [] and again["last_event_id"] == body["last_event_id"]
    first = client_for(people["viewer"]).get(url, {"after": ids[0], "limit": 1}).json()
    assert [e["id"] for e in first["events"]] == [ids[1]] and first["last_event_id"] == ids[1]


def test_a_finished_rollout_shows_all_traffic_on_it(project, people, memory_runtime,
                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        drive(deployment_request(project=project, sha="a" * 40, actor=people["deployer"]))
    body = client_for(people["viewer"]).get("/api/projects/hello/deployments/1/rollout/").json()
    assert body["state"] == "succeeded" and body["is_live"] and body["is_final"]
    assert body["weights"] == {"1": 100} and body["steps"] == [] and body["holding"] is False


def test_queries_do_not_grow_with_the_timeline(held, people):
    client = client_for(people["viewer"])
    with CaptureQueriesContext(connection) as few:
        client.get("/api/projects/hello/deployments/2/rollout/")
    for i in range(30):
        held.events.create(kind="log", message=f"line {i}")
    with CaptureQueriesContext(connection) as many:
        body = client.get("/api/projects/hello/deployments/2/rollout/").json()
    assert len(body["events"]) > 30
    assert len(many) <= len(few)  # (the first request also warms a per-user cache)


@pytest.mark.parametrize("query", [{"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "100000"},
                                   {"after": "9" * 30}])
def test_bad_cursors_are_a_400_with_a_message(held, people, query):
    response = client_for(people["viewer"]).get("/api/projects/hello/deployments/2/rollout/", query)
    assert response.status_code == 400 and response.json()["message"]


def test_strangers_and_unknown_numbers_get_a_404(held, people, django_user_model):
    stranger = django_user_model.objects.create_user("mallory", password="x-42-long-pw")
    assert client_for(stranger).get("/api/projects/hello/deployments/2/rollout/").status_code == 404
    missing = client_for(people["viewer"]).get("/api/projects/hello/deployments/99/rollout/")
    assert missing.status_code == 404 and "#99" in missing.json()["message"]
    assert APIClient().get("/api/projects/hello/deployments/2/rollout/").status_code in (401, 403)
