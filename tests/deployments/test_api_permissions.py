# ruff: noqa: F811 - pytest fixtures imported from tests.dashboard.people are parameters here
"""The permission matrix over the API: viewer reads, deployer acts, admin administers, staff all."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from deployments.models import AuditEntry, Deployment, Project
from tests.dashboard.people import history_make, people, project  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

ROLES = ["stranger", "viewer", "deployer", "admin", "staff"]
# (method, path, body, least role allowed)
MATRIX = [
    ("get", "/api/projects/hello/", None, "viewer"),
    ("get", "/api/projects/hello/deployments/", None, "viewer"),
    ("get", "/api/projects/hello/deployments/1/", None, "viewer"),
    ("get", "/api/projects/hello/members/", None, "viewer"),
    ("get", "/api/projects/hello/audit/", None, "viewer"),
    ("get", "/api/projects/hello/metrics/", None, "viewer"),
    ("post", "/api/projects/hello/deployments/", {"sha": "e" * 40}, "deployer"),
    ("post", "/api/projects/hello/deployments/1/rollback/", None, "deployer"),
    ("post", "/api/projects/hello/deployments/1/redeploy/", None, "deployer"),
    ("patch", "/api/projects/hello/", {"replicas": 2}, "admin"),
    ("post", "/api/projects/hello/members/", {"username": "stranger", "role": "viewer"}, "admin"),
    ("post", "/api/projects/", {"slug": "new", "repository": "octo/new"}, "staff"),
]
RANK = {name: i for i, name in enumerate(ROLES)}


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,path,body,least", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_permission_matrix(role, method, path, body, least, project, people, django_capture_on_commit_callbacks):
    history_make(project, 2, live=2)
    before = (Deployment.objects.count(), AuditEntry.objects.count(), Project.objects.count())
    with django_capture_on_commit_callbacks(execute=False):
        response = getattr(client_for(people[role]), method)(path, body, format="json")
    allowed = RANK[role] >= RANK[least]
    if allowed:
        assert response.status_code < 300, response.json()
        if method != "get":
            assert AuditEntry.objects.count() == before[1] + 1  # every change is audited
    else:
        # A stranger learns nothing (404, or 403 for staff-only creation); a member gets a 403.
        expected = 404 if role == "stranger" and "/hello/" in path else 403
        assert response.status_code == expected, response.json()
        assert response.json()["message"]
        assert (Deployment.objects.count(), AuditEntry.objects.count(), Project.objects.count()) == before


def test_project_list_shows_only_visible_projects(project, people, make_project):
    make_project(slug="secret", name="Secret", repository="octo/secret")
    assert [p["slug"] for p in client_for(people["viewer"]).get("/api/projects/").json()["results"]] == ["hello"]
    assert client_for(people["stranger"]).get("/api/projects/").json()["results"] == []
    assert len(client_for(people["staff"]).get("/api/projects/").json()["results"]) == 2


def test_viewer_rollback_refusal_message(project, people):
    history_make(project, 2, live=2)
    response = client_for(people["viewer"]).post("/api/projects/hello/deployments/1/rollback/")
    assert response.status_code == 403
    assert response.json() == {"error": "permission_denied",
                               "message": "You are a viewer of hello; only a deployer or admin may roll back it."}


@pytest.mark.parametrize("rows", [3, 25])
def test_history_api_uses_a_constant_number_of_queries(project, people, rows):
    counts = []
    for total in (rows, 120):
        client = client_for(type(people["viewer"]).objects.get(username="viewer"))  # as a new request would
        Project.objects.filter(pk=project.pk).update(live_deployment=None)
        Deployment.objects.all().delete()
        history_make(project, total, live=total)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/api/projects/hello/deployments/")
        assert response.status_code == 200 and len(response.json()["results"]) == min(total, 25)
        counts.append(len(ctx))
    assert counts[0] == counts[1] and counts[0] <= 6
