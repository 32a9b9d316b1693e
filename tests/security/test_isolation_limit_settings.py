"""A project's memory and CPU limits are settings a project's admin sets, within the
operator's caps (SWITCHBACK_MAX_MEMORY_MB, SWITCHBACK_MAX_CPUS): hostile values get a 400
with a message and write nothing; good ones are shown and snapshotted into deployments."""

from __future__ import annotations

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from deployments.models import AuditEntry
from deployments.services import deployment_request
from deployments.specs import revision_spec_for
from tests.dashboard.people import login, people, project  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(people):  # noqa: F811
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(people['admin'])[1]}")
    return client


@pytest.mark.parametrize("body,field", [
    ({"memory_mb": 8}, "memory_mb"), ({"memory_mb": 5000}, "memory_mb"), ({"memory_mb": -1}, "memory_mb"),
    ({"memory_mb": "lots"}, "memory_mb"), ({"cpus": 0}, "cpus"), ({"cpus": 4.5}, "cpus"),
    ({"cpus": "1e309"}, "cpus"), ({"cpus": "NaN"}, "cpus"), ({"cpus": []}, "cpus"),
])
def test_hostile_limits_are_refused(admin_api, project, body, field):  # noqa: F811
    audits = AuditEntry.objects.count()
    response = admin_api.patch(f"/api/projects/{project.slug}/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] and field in response.content.decode()
    project.refresh_from_db()
    assert (project.memory_mb, project.cpus) == (512, 1.0)
    assert AuditEntry.objects.count() == audits


def test_limits_are_shown_and_snapshotted(admin_api, project, people, memory_runtime):  # noqa: F811
    assert {"memory_mb": 512, "cpus": 1.0}.items() <= admin_api.get(f"/api/projects/{project.slug}/").json().items()
    response = admin_api.patch(f"/api/projects/{project.slug}/", {"memory_mb": 256, "cpus": 0.25}, format="json")
    assert response.status_code == 200 and response.json()["memory_mb"] == 256 and response.json()["cpus"] == 0.25
    project.refresh_from_db()
    deployment = deployment_request(project=project, sha="d" * 40, actor=people["deployer"])
    spec = revision_spec_for(deployment)
    assert (spec.memory_mb, spec.cpus) == (256, 0.25)
    # A snapshot from before the limits existed runs with the defaults.
    deployment.config.pop("memory_mb")
    deployment.config.pop("cpus")
    assert (revision_spec_for(deployment).memory_mb, revision_spec_for(deployment).cpus) == (512, 1.0)


def test_the_operator_caps_apply(admin_api, project, settings):  # noqa: F811
    settings.SWITCHBACK = {**settings.SWITCHBACK, "MAX_MEMORY_MB": 128, "MAX_CPUS": 0.5}
    response = admin_api.patch(f"/api/projects/{project.slug}/", {"memory_mb": 256}, format="json")
    assert response.status_code == 400 and "SWITCHBACK_MAX_MEMORY_MB" in response.json()["message"]
    assert admin_api.patch(f"/api/projects/{project.slug}/", {"memory_mb": 128, "cpus": 0.5},
                           format="json").status_code == 200


def test_the_dashboard_shows_and_checks_the_limits(project, people, login):  # noqa: F811
    client = login(people["admin"])
    page = client.get(f"/projects/{project.slug}/settings/").content.decode()
    assert 'name="memory_mb"' in page and 'name="cpus"' in page
    from tests.security.test_isolation_staff_fields import _settings_form

    response = client.post(f"/projects/{project.slug}/settings/", _settings_form(project, memory_mb=99999))
    assert response.status_code == 400 and "SWITCHBACK_MAX_MEMORY_MB" in response.content.decode()
    project.refresh_from_db()
    assert project.memory_mb == 512
