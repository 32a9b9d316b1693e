"""Gate settings through the dashboard (two checkboxes, optional JSON) and the API, and a
failed gate's figures on the deployment page."""

import html
import re

import pytest

from deployments.models import DeploymentEvent, Project, State
from deployments.services import deployment_request
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db
FORM = {"name": "Hello", "repository": "octo/hello", "production_branch": "main", "runtime": "single-host",
        "router": "default", "dockerfile": "Dockerfile", "port": 8000, "replicas": 1, "memory_mb": 512, "cpus": 1,
        "startup_probe_path": "/healthz", "readiness_probe_path": "/readyz", "liveness_probe_path": "/healthz",
        "probe_period_seconds": 1, "probe_timeout_seconds": 1, "probe_failure_threshold": 3,
        "probe_success_threshold": 1, "probe_initial_delay_seconds": 0, "ready_timeout_seconds": 120,
        "drain_seconds": 10, "keep_warm_seconds": 300, "watch_seconds": 30, "keep_images": 5}


def test_checkboxes_turn_the_default_gates_on_and_off(project, people, login):
    client = login(people["admin"])
    page = client.get("/projects/hello/settings/").content.decode()
    assert "Roll back if the error rate exceeds 2% or is 5x the stable&#x27;s" in page
    response = client.post("/projects/hello/settings/", {**FORM, "gate_error_rate": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Project.objects.get(pk=project.pk).gates == {"error_rate": True}
    client.post("/projects/hello/settings/", {**FORM, "gate_error_rate": "on", "gate_latency": "on",
                                              "gates_json": '{"max_error_rate": 1, "failures": 3}'})
    assert Project.objects.get(pk=project.pk).gates == {"max_error_rate": 1, "failures": 3, "error_rate": True,
                                                        "latency": True}
    page = client.get("/projects/hello/settings/").content.decode()
    assert re.search(r'<input type="checkbox" name="gate_latency"[^>]*checked', page)
    assert '"max_error_rate": 1' in html.unescape(page) and '"failures": 3' in html.unescape(page)
    client.post("/projects/hello/settings/", {**FORM, "gates_json": '{"max_error_rate": 1}'})
    assert Project.objects.get(pk=project.pk).gates == {}  # no checkbox: no gate


@pytest.mark.parametrize("text,words", [
    ('{"max_error_rate": 500}', "max_error_rate"), ("[1]", "object"), ('{"error_rate": true}', "checkboxes"),
    ("{", "Not valid JSON"), ('{"__import__": 1}', "Unknown gate keys"), ("[" * 100_000, "JSON"),
])
def test_hostile_gate_json_is_a_form_error(project, people, login, text, words):
    response = login(people["admin"]).post("/projects/hello/settings/", {**FORM, "gate_error_rate": "on",
                                                                         "gates_json": text})
    assert response.status_code == 400 and words in response.content.decode()
    assert Project.objects.get(pk=project.pk).gates == {}


@pytest.mark.parametrize("gates,words", [
    ({"error_rate": "yes"}, "true or false"), ({"interval": 0}, "interval"), ({"shell": "rm -rf /"}, "Unknown"),
    ([], "object"), ({"min_requests": 1e308}, "min_requests"),
])
def test_api_refuses_hostile_gates_with_a_json_message(api, user, make_project, gates, words):
    make_project(slug="shop", repository="octo/shop")
    from deployments.models import Membership, Role

    Membership.objects.create(project=Project.objects.get(slug="shop"), user=user, role=Role.ADMIN)
    response = api.patch("/api/projects/shop/", {"gates": gates}, format="json")
    assert response.status_code == 400 and words in str(response.json())
    ok = api.patch("/api/projects/shop/", {"gates": {"error_rate": True, "max_error_rate": 1.5}}, format="json")
    assert ok.status_code == 200 and ok.json()["gates"] == {"error_rate": True, "max_error_rate": 1.5}


def test_the_failing_figures_show_on_the_deployment_page(project, people, login, user, memory_runtime):
    rollout_drive_until_wait(deployment_request(project=project, sha="a" * 40, actor=user))
    Project.objects.filter(pk=project.pk).update(strategy={"steps": [{"weight": 10, "wait": 60}]},
                                                 gates={"error_rate": True, "failures": 1, "interval": 0.5})
    memory_runtime.counters = {}
    d = rollout_drive_until_wait(deployment_request(project=Project.objects.get(pk=project.pk), sha="b" * 40,
                                                    actor=user))
    memory_runtime.count("hello", "2", requests=1000, errors=79)
    memory_runtime.count("hello", "1", requests=9000, errors=9)
    # Backdate the window's start instead of waiting for it: the check is due and covers 30 s.
    from datetime import datetime, timedelta

    progress = dict(d.progress)
    start = datetime.fromisoformat(progress["gate"]["since"]) - timedelta(seconds=30)
    progress["gate"] = {**progress["gate"], "since": start.isoformat(), "checked": start.isoformat()}
    type(d).objects.filter(pk=d.pk).update(progress=progress)
    d = rollout_drive_until_wait(d)
    assert d.state == State.FAILED
    page = login(people["viewer"]).get(f"/projects/hello/deployments/{d.number}/").content.decode()
    assert "error rate 7.9% (stable 0.1%) over 30 s, threshold 2%" in page
    panel = login(people["viewer"]).get(f"/projects/hello/deployments/{d.number}/rollout/",
                                        HTTP_HX_REQUEST="true").content.decode()
    assert "Gates: roll back if the error rate exceeds 2% or is 5x the stable" in panel
    assert "<strong>Gate failed: error rate 7.9% (stable 0.1%) over 30 s, threshold 2%; rolling back.</strong>" in panel
    assert DeploymentEvent.objects.filter(deployment=d, kind="gate", data__gate="fail").exists()
