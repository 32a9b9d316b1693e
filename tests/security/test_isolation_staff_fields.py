"""Attack: a project's admin (not platform staff) tries to leave their project through the
fields that say where and from what it runs (issue 9, "Crossing projects").

runtime, cluster and image_template are the operator's call: the API answers 403 JSON with
a message before it validates anything, the dashboard a readable form error, and nothing is
written (row, audit).  One staff rule (permissions.user_is_staff) serves the API, the pages
and the services.
"""

from __future__ import annotations

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from deployments.models import AuditEntry, Project
from tests.dashboard.people import login, people, project  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

STAFF_ONLY = [
    ("image_template", "docker.io/library/victim:{sha}"),
    ("image_template", "registry.example.com/team/app:{sha}"),  # allowed for staff, not for admins
    ("runtime", "kubernetes"),
    ("cluster", "eu"),
]


def api_as(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user)[1]}")
    return client


def snapshot(project: Project) -> dict:  # noqa: F811
    project.refresh_from_db()
    return {name: getattr(project, name) for name in ("runtime", "cluster", "image_template", "replicas")}


@pytest.mark.parametrize("field,value", STAFF_ONLY)
def test_a_project_admin_cannot_patch_staff_only_fields(project, people, field, value):  # noqa: F811
    before, audits = snapshot(project), AuditEntry.objects.count()
    response = api_as(people["admin"]).patch(f"/api/projects/{project.slug}/", {field: value, "replicas": 3},
                                            format="json")
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["error"] == "permission_denied"
    assert body["message"].startswith(f"{field}: only platform staff"), body
    assert snapshot(project) == before  # not even the other field in the same request
    assert AuditEntry.objects.count() == audits


def test_refused_before_validation_so_messages_leak_nothing(project, people):  # noqa: F811
    # A value that would fail validation still gets the 403: the admin learns nothing of
    # the allow-list or of which image names exist.
    for value in ("--privileged", "localhost/other:{sha}", "x" * 400):
        response = api_as(people["admin"]).patch(f"/api/projects/{project.slug}/", {"image_template": value},
                                                format="json")
        assert response.status_code == 403 and response.json()["error"] == "permission_denied"


def test_unchanged_staff_fields_do_not_block_other_settings(project, people):  # noqa: F811
    # The dashboard posts every field; so may an API client that read the project first.
    response = api_as(people["admin"]).patch(
        f"/api/projects/{project.slug}/",
        {"runtime": project.runtime, "cluster": "", "image_template": "", "replicas": 2}, format="json")
    assert response.status_code == 200, response.content
    assert snapshot(project)["replicas"] == 2


def test_deployers_and_strangers_are_refused_as_before(project, people):  # noqa: F811
    assert api_as(people["deployer"]).patch(f"/api/projects/{project.slug}/", {"runtime": "kubernetes"},
                                            format="json").status_code == 403
    assert api_as(people["stranger"]).patch(f"/api/projects/{project.slug}/", {"runtime": "kubernetes"},
                                            format="json").status_code == 404


def test_staff_may_change_the_runtime(project, people):  # noqa: F811
    response = api_as(people["staff"]).patch(f"/api/projects/{project.slug}/", {"runtime": "kubernetes"},
                                            format="json")
    assert response.status_code == 200, response.content
    assert snapshot(project)["runtime"] == "kubernetes"


def _settings_form(project: Project, **changes) -> dict:  # noqa: F811
    form = {"name": project.name, "repository": project.repository, "production_branch": project.production_branch,
            "clone_url": "", "runtime": project.runtime, "cluster": "", "router": project.router,
            "image_template": "", "dockerfile": project.dockerfile, "port": project.port,
            "replicas": project.replicas, "memory_mb": project.memory_mb, "cpus": project.cpus,
            "startup_probe_path": project.startup_probe_path, "readiness_probe_path": project.readiness_probe_path,
            "liveness_probe_path": project.liveness_probe_path,
            "probe_period_seconds": project.probe_period_seconds,
            "probe_timeout_seconds": project.probe_timeout_seconds,
            "probe_failure_threshold": project.probe_failure_threshold,
            "probe_success_threshold": project.probe_success_threshold,
            "probe_initial_delay_seconds": project.probe_initial_delay_seconds,
            "ready_timeout_seconds": project.ready_timeout_seconds, "drain_seconds": project.drain_seconds,
            "keep_warm_seconds": project.keep_warm_seconds, "watch_seconds": project.watch_seconds,
            "keep_images": project.keep_images, "strategy_json": ""}
    return {**form, **changes}


@pytest.mark.parametrize("field,value", [("runtime", "kubernetes"),
                                         ("image_template", "registry.example.com/team/app:{sha}")])
def test_the_dashboard_refuses_with_a_form_error(project, people, login, field, value):  # noqa: F811
    before = snapshot(project)
    response = login(people["admin"]).post(f"/projects/{project.slug}/settings/",
                                           _settings_form(project, **{field: value, "replicas": 4}))
    assert response.status_code == 400
    page = response.content.decode()
    assert "only platform staff" in page and 'role="alert"' in page
    assert snapshot(project) == before
    # The same form, unchanged in the staff-only fields, saves.
    response = login(people["admin"]).post(f"/projects/{project.slug}/settings/",
                                           _settings_form(project, replicas=4))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert snapshot(project)["replicas"] == 4


def test_one_staff_rule_for_pages_and_api(db, django_user_model, client):
    # A superuser without is_staff is platform staff everywhere (the pages used to say no).
    root = django_user_model.objects.create_user("root", password="pw-root-42", is_superuser=True)
    client.force_login(root)
    assert client.get("/new-project/").status_code == 200
    assert api_as(root).post("/api/projects/", {"slug": "made", "repository": "octo/made"},
                             format="json").status_code == 201
    # An inactive staff account is nobody.
    gone = django_user_model.objects.create_user("gone", password="pw-gone-42", is_staff=True, is_active=False)
    from deployments.permissions import user_is_staff

    assert user_is_staff(root) and not user_is_staff(gone)
