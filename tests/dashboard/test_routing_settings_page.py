"""The settings page's canary routing fields: set by a project admin, refused when unsafe."""

import pytest

pytestmark = pytest.mark.django_db


def _settings_form(**extra):
    return {"name": "Hello", "repository": "octo/hello", "production_branch": "main", "runtime": "single-host",
            "router": "default", "dockerfile": "Dockerfile", "port": 8000, "replicas": 1, "memory_mb": 512, "cpus": 1,
            "startup_probe_path": "/healthz", "readiness_probe_path": "/readyz", "liveness_probe_path": "/healthz",
            "probe_period_seconds": 1, "probe_timeout_seconds": 1, "probe_failure_threshold": 3,
            "probe_success_threshold": 1, "probe_initial_delay_seconds": 0, "ready_timeout_seconds": 120,
            "drain_seconds": 10, "keep_warm_seconds": 30, "watch_seconds": 30, "keep_images": 5,
            "strategy_json": "", **extra}


def test_dashboard_settings_set_routing_and_refuse_a_bad_header(project, people, login):
    client = login(people["admin"])
    page = client.get("/projects/hello/settings/").content.decode()
    assert "Canary routing" in page and 'name="canary_header"' in page and 'name="sticky_canary"' in page
    response = client.post("/projects/hello/settings/", _settings_form(
        sticky_canary="on", canary_header="X-Canary", canary_header_value="", canary_cookie="canary"))
    assert response.status_code == 302, response.content.decode()[:2000]
    project.refresh_from_db()
    assert (project.sticky_canary, project.canary_header, project.canary_header_value, project.canary_cookie) == (
        True, "X-Canary", "always", "canary")
    bad = client.post("/projects/hello/settings/", _settings_form(canary_header="X-Canary\r\nSet-Cookie: a=b"))
    assert bad.status_code == 400 and "header" in bad.content.decode()
    assert b"Traceback" not in bad.content
    project.refresh_from_db()
    assert project.canary_header == "X-Canary"
