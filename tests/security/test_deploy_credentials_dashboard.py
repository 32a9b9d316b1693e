"""The dashboard's settings page: the same source rules as the API (a readable form error,
nothing written), a deploy key whose public half only is shown, a write-only token."""

from __future__ import annotations

import uuid

import pytest

from deployments.models import AuditEntry, Project
from tests.dashboard.people import login, people, project  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

FORM = {"name": "Hello", "repository": "octo/hello", "production_branch": "main", "runtime": "single-host",
        "router": "default", "dockerfile": "Dockerfile", "port": 8000, "replicas": 1,
        "startup_probe_path": "/healthz", "readiness_probe_path": "/readyz", "liveness_probe_path": "/healthz",
        "probe_period_seconds": 1, "probe_timeout_seconds": 1, "probe_failure_threshold": 3,
        "probe_success_threshold": 1, "probe_initial_delay_seconds": 0, "ready_timeout_seconds": 120,
        "drain_seconds": 10, "keep_warm_seconds": 30, "watch_seconds": 30, "keep_images": 5, "strategy_json": "",
        "memory_mb": 512, "cpus": 1.0}


@pytest.mark.parametrize("field, value", [
    ("clone_url", "--upload-pack=sh -c 'touch /tmp/x'; :"),
    ("clone_url", "https://x-access-token:ghp_abc@github.com/a/b.git"),
    ("clone_url", "file:///etc"),
    ("clone_url", "http://127.0.0.1:5000/a.git"),
    ("dockerfile", "../../etc/passwd"),
    ("production_branch", "--orphan"),
])
def test_hostile_source_settings_are_a_readable_form_error(project, people, login, field, value):  # noqa: F811
    client = login(people["admin"])
    response = client.post("/projects/hello/settings/", {**FORM, field: value})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'role="alert"' in page and field in page and "Traceback" not in page
    # The message never repeats the URL (the form field shows the admin's own input back).
    alert = page.split('role="alert">', 1)[1].split("</p>", 1)[0]
    assert "ghp_abc" not in alert
    fresh = Project.objects.get(slug="hello")
    assert getattr(fresh, field) != value
    assert not AuditEntry.objects.filter(action="project.update").exists()


def test_deploy_key_button_and_write_only_token(project, people, login):  # noqa: F811
    client = login(people["admin"])
    page = client.get("/projects/hello/settings/").content.decode()
    assert "Generate a deploy key" in page and 'name="git_token_new"' in page
    assert client.post("/projects/hello/settings/deploy-key/").status_code == 302
    fresh = Project.objects.get(slug="hello")
    page = client.get("/projects/hello/settings/").content.decode()
    assert fresh.deploy_key_public in page and "Replace the deploy key" in page
    assert all(line not in page for line in fresh.deploy_key_private.splitlines()[1:-1])

    token = f"glpat-{uuid.uuid4().hex}"
    response = client.post("/projects/hello/settings/", {**FORM, "git_token_new": token})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Project.objects.get(slug="hello").git_token == token
    page = client.get("/projects/hello/settings/").content.decode()
    assert token not in page and "A token is set." in page
    assert token not in str(list(AuditEntry.objects.values()))
    client.post("/projects/hello/settings/", {**FORM, "git_token_remove": "on"})
    assert Project.objects.get(slug="hello").git_token == ""


def test_deployers_cannot_generate_a_deploy_key(project, people, login):  # noqa: F811
    assert login(people["deployer"]).post("/projects/hello/settings/deploy-key/").status_code == 403
    assert Project.objects.get(slug="hello").deploy_key_public == ""
