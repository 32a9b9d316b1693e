# ruff: noqa: F811 - pytest fixtures imported from tests.dashboard.people are parameters here
"""Deleting a project archives it: in-flight work cancelled, revisions, route and images
removed, slug freed, history and audit kept for staff; admin only; audited; API and dashboard."""

import pytest
from rest_framework.test import APIClient

from deployments.models import AuditEntry, Deployment, Project, State
from deployments.runtimes.base import RevisionSpec
from deployments.services import deployment_request, project_create
from tests.dashboard.people import history_make, login, people, project  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_admin_archives_a_project_through_the_api(project, people, memory_runtime):
    history_make(project, 3, live=3)
    for number in ("2", "3"):
        memory_runtime.running[("hello", number)] = RevisionSpec(project="hello", revision=number,
                                                                 image=f"hello:{number}")
    memory_runtime.weights["hello"] = {"3": 100}
    in_flight = deployment_request(project=project, sha="f" * 40, actor=people["admin"])
    assert _api(people["deployer"]).delete("/api/projects/hello/").status_code == 403
    assert _api(people["stranger"]).delete("/api/projects/hello/").status_code == 404

    response = _api(people["admin"]).delete("/api/projects/hello/")
    assert response.status_code == 204, response.content
    project.refresh_from_db()
    assert project.archived_at is not None and project.archived_slug == "hello"
    assert project.slug == f"archived-{project.pk}" and project.live_deployment is None
    assert not [key for key in memory_runtime.running if key[0] == "hello"]  # every revision removed
    in_flight.refresh_from_db()
    assert in_flight.state == State.CANCELLED and "archived" in in_flight.failure_reason
    entry = AuditEntry.objects.get(action="project.archive")
    assert entry.actor == people["admin"] and entry.data["slug"] == "hello" and entry.project_id == project.pk

    # Gone for its members; staff still read its history and audit, and change nothing.
    assert _api(people["admin"]).get(f"/api/projects/{project.slug}/").status_code == 404
    assert _api(people["admin"]).get("/api/projects/").json()["results"] == []
    staff = _api(people["staff"])
    history = staff.get(f"/api/projects/{project.slug}/deployments/")
    assert history.status_code == 200 and history.json()["count"] == 4
    assert staff.get(f"/api/projects/{project.slug}/audit/").status_code == 200
    refused = staff.post(f"/api/projects/{project.slug}/deployments/", {"sha": "a" * 40}, format="json")
    assert refused.status_code == 403 and "archived" in refused.json()["message"]
    assert Deployment.objects.filter(project=project).count() == 4

    # The slug is free again.
    again = project_create(actor=people["staff"], name="Hello again", slug="hello", repository="octo/hello2")
    assert again.pk != project.pk and Project.objects.get(slug="hello") == again


def test_archiving_again_finishes_the_job_and_archived_slugs_are_reserved(project, people, memory_runtime):
    from deployments.errors import ValidationError
    from deployments.services import project_archive

    project_archive(project=project, actor=people["admin"])
    project.refresh_from_db()
    slug = project.slug
    project_archive(project=project, actor=people["staff"])  # idempotent
    project.refresh_from_db()
    assert project.slug == slug and project.archived_slug == "hello"
    with pytest.raises(ValidationError, match="archived-"):
        project_create(actor=people["staff"], name="X", slug=f"archived-{project.pk + 1}", repository="o/x")


def test_the_dashboard_asks_for_the_slug(project, people, login, memory_runtime):
    client = login(people["admin"])
    page = client.get("/projects/hello/settings/").content.decode()
    assert 'action="/projects/hello/archive/"' in page and 'name="confirm"' in page
    wrong = client.post("/projects/hello/archive/", {"confirm": "hell"}, follow=True)
    assert "Type the project&#x27;s slug, hello" in wrong.content.decode()
    project.refresh_from_db()
    assert project.archived_at is None
    assert login(people["deployer"]).post("/projects/hello/archive/", {"confirm": "hello"}).status_code == 403
    done = login(people["admin"]).post("/projects/hello/archive/", {"confirm": "hello"})
    assert done.status_code == 302
    project.refresh_from_db()
    assert project.archived_at is not None and project.archived_by_name == "admin"


def test_a_webhook_for_an_archived_project_finds_nothing(project, people, deliver, memory_runtime):
    from deployments.services import project_archive

    hook = project.webhook_id
    project_archive(project=project, actor=people["admin"])
    payload = {"ref": "refs/heads/main", "after": "c" * 40, "repository": {"full_name": "octo/hello"}}
    response = deliver("push", payload, to=f"/webhooks/github/{hook}/")
    unknown = deliver("push", payload, to=f"/webhooks/github/{'0' * len(hook)}/")
    assert response.status_code == unknown.status_code and response.status_code in (401, 404)
    assert not Deployment.objects.filter(commit_sha="c" * 40).exists()


def test_the_openapi_schema_shows_the_project_defaults(people):
    schema = _api(people["viewer"]).get("/api/schema/?format=json")
    assert schema.status_code == 200
    components = schema.json()["components"]["schemas"]
    for name in ("Project", "ProjectRequest"):
        properties = components[name]["properties"]
        assert properties["replicas"]["default"] == 1 and properties["port"]["default"] == 8000
        assert properties["readiness_probe_path"]["default"] == "/readyz"
        assert properties["probe_failure_threshold"]["default"] == 3
    assert "default" not in components["PatchedProjectRequest"]["properties"]["replicas"]  # PATCH keeps values


def test_repository_is_optional_only_for_a_file_clone_url(people, tmp_path):
    staff = _api(people["staff"])
    local = staff.post("/api/projects/", {"slug": "local", "clone_url": f"file://{tmp_path}/repo",
                                          "webhook_secret": "x"}, format="json")
    assert local.status_code == 201, local.json()
    remote = staff.post("/api/projects/", {"slug": "remote", "clone_url": "https://github.com/o/r.git",
                                           "webhook_secret": "x"}, format="json")
    assert remote.status_code == 400 and "owner/name" in remote.json()["message"]


def test_demo_commit_makes_a_commit_and_deploys_it(settings, tmp_path):
    import subprocess

    from deployments.demo import demo_commit_deploy, demo_next_deploy, demo_project_ensure, demo_repo_ensure

    settings.VAR_DIR = tmp_path
    shas = demo_repo_ensure()
    assert len(shas) == 2 and shas == demo_repo_ensure()  # made once
    project = demo_project_ensure()
    assert project.repository == "" and project.clone_url == f"file://{tmp_path}/demo/hello"
    assert project.keep_warm_seconds == 3600  # the first Rollback a new user clicks is a warm one
    first = demo_next_deploy(project=project, shas=shas)
    assert first.commit_sha == shas[0]
    assert demo_next_deploy(project=project, shas=shas) is None  # one at a time: #1 is still queued
    deployment = demo_commit_deploy(message="-m looks like an option")
    head = subprocess.run(["git", "-C", str(tmp_path / "demo" / "hello"), "log", "-1", "--format=%H %s"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert head == f"{deployment.commit_sha} -m looks like an option"
    assert deployment.message == "-m looks like an option" and deployment.number == 2
