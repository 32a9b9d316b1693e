"""The dashboard as people use it: who sees what, who may do what, and what it records."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import AuditEntry, Deployment, Membership, Project, State
from tests.dashboard.people import history_make

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_login_is_required(client, project):
    response = client.get("/projects/hello/")
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("url", [
    "/", "/projects/hello/", "/projects/hello/?page=2", "/projects/hello/deployments/3/",
    "/projects/hello/members/", "/projects/hello/activity/", "/projects/hello/insights/?days=7",
    "/insights/?days=90", "/account/", "/projects/hello/deployments/3/rollback/",
])
def test_pages_render_for_a_deployer(url, project, people, login):
    history_make(project, 30, live=28)
    response = login(people["deployer"]).get(url)
    assert response.status_code == 200, response.content[:500]
    assert b"Traceback" not in response.content


def test_viewer_sees_history_but_no_rollback_button(project, people, login):
    history_make(project, 5, live=5)
    page = login(people["viewer"]).get("/projects/hello/").content.decode()
    assert 'id="deployment-3"' in page and "#5" in page
    assert "Rollback" not in page and "Deploy a commit" not in page and "/settings/" not in page


def test_deployer_sees_rollback_on_earlier_live_deployments_only(project, people, login):
    history_make(project, 4, live=4)
    Deployment.objects.filter(number=2).update(state=State.FAILED, live_at=None)
    page = login(people["deployer"]).get("/projects/hello/").content.decode()
    for number, shown in ((1, True), (2, False), (3, True), (4, False)):
        assert (f"/deployments/{number}/rollback/" in page) is shown, number


def test_viewer_posting_a_rollback_is_refused_and_nothing_changes(project, people, login):
    history_make(project, 3, live=3)
    client = login(people["viewer"])
    before = (Deployment.objects.count(), AuditEntry.objects.count())
    response = client.post("/projects/hello/deployments/1/rollback/")
    assert response.status_code == 403
    assert "only a deployer or admin may roll back" in response.content.decode()
    htmx = client.post("/projects/hello/deployments/1/rollback/", **HTMX)
    assert htmx.status_code == 403 and htmx["HX-Retarget"] == "#flash"
    assert (Deployment.objects.count(), AuditEntry.objects.count()) == before
    project.refresh_from_db()
    assert project.live_deployment.number == 3


def test_stranger_gets_404_and_does_not_see_the_project(project, people, login):
    history_make(project, 2)
    client = login(people["stranger"])
    assert client.get("/projects/hello/").status_code == 404
    assert client.post("/projects/hello/deployments/1/rollback/").status_code == 404
    assert "hello" not in client.get("/").content.decode().replace("Hello, ", "")


def test_rollback_with_htmx_swaps_the_history_and_records_who(project, people, login,
                                                              django_capture_on_commit_callbacks):
    history_make(project, 3, live=3)
    client = login(people["deployer"])
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/projects/hello/deployments/1/rollback/", HX_TARGET="history", **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="deployment-4"' in body and "Rolling back to #1 as deployment #4" in body
    assert 'hx-swap-oob="innerHTML"' in body and 'id="rollout-panel"' in body  # the new rollout appears
    rollback = Deployment.objects.get(number=4)
    assert rollback.trigger == "rollback" and rollback.rollback_of.number == 1
    assert rollback.requested_by == people["deployer"]
    entry = AuditEntry.objects.get(action="deployment.rollback")
    assert entry.actor == people["deployer"] and entry.data == {"deployment": 4, "to": 1, "from": 3}


def test_rollback_without_javascript_confirms_then_redirects(project, people, login,
                                                             django_capture_on_commit_callbacks):
    history_make(project, 2, live=2)
    client = login(people["deployer"])
    confirm = client.get("/projects/hello/deployments/1/rollback/").content.decode()
    assert "Roll back to #1" in confirm and 'method="post"' in confirm
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/projects/hello/deployments/1/rollback/")
    assert response.status_code == 302 and response["Location"] == "/projects/hello/"
    assert Deployment.objects.filter(trigger="rollback").count() == 1


def test_a_conflict_is_a_readable_page_not_a_500(project, people, login):
    history_make(project, 2, live=2)
    response = login(people["deployer"]).post("/projects/hello/deployments/2/rollback/")
    assert response.status_code == 409 and "already live" in response.content.decode()
    assert login(people["deployer"]).get("/projects/hello/deployments/99/").status_code == 404


def test_rollout_panel_polls_while_in_flight_and_stops_with_286(project, people, login):
    history_make(project, 2, live=2)
    d = Deployment.objects.create(project=project, number=3, commit_sha="c" * 40, trigger="api",
                                  state=State.VERIFYING, config=project.runtime_config())
    client = login(people["viewer"])
    page = client.get("/projects/hello/").content.decode()
    assert 'id="rollout-panel"' in page and 'hx-trigger="every 1s"' in page
    live = client.get("/projects/hello/deployments/3/rollout/", **HTMX)
    assert live.status_code == 200 and 'hx-trigger="every 1s"' in live.content.decode()
    assert "Abort" not in live.content.decode()  # a viewer gets no buttons
    Deployment.objects.filter(pk=d.pk).update(state=State.FAILED, failure_reason="probe failed")
    done = client.get("/projects/hello/deployments/3/rollout/", **HTMX)
    assert done.status_code == 286
    assert json.loads(done["HX-Trigger"]) == {"sb-changed": {}}  # htmx triggers the event on body
    assert "hx-trigger" not in done.content.decode() and "probe failed" in done.content.decode()


def test_history_partial_adds_the_rollout_panel_only_when_new(project, people, login):
    history_make(project, 2, live=2)
    Deployment.objects.create(project=project, number=3, commit_sha="c" * 40, trigger="api",
                              state=State.BUILDING, config=project.runtime_config())
    client = login(people["viewer"])
    assert "hx-swap-oob" in client.get("/projects/hello/", **HTMX).content.decode()
    assert "hx-swap-oob" not in client.get("/projects/hello/?showing=3", **HTMX).content.decode()


def test_settings_are_for_admins_and_secrets_are_write_only(project, people, login):
    assert login(people["deployer"]).get("/projects/hello/settings/").status_code == 403
    client = login(people["admin"])
    page = client.get("/projects/hello/settings/").content.decode()
    assert f"/webhooks/github/{project.webhook_id}/" in page and "application/json" in page and "Pushes" in page
    assert "s3cret" not in page
    form = {"name": "Hello", "repository": "octo/hello", "production_branch": "main", "runtime": "single-host",
            "router": "default", "dockerfile": "Dockerfile", "port": 8080, "replicas": 2, "memory_mb": 512, "cpus": 1,
            "startup_probe_path": "/healthz", "readiness_probe_path": "/readyz", "liveness_probe_path": "/healthz",
            "probe_period_seconds": 1, "probe_timeout_seconds": 1, "probe_failure_threshold": 3,
            "probe_success_threshold": 1, "probe_initial_delay_seconds": 0, "ready_timeout_seconds": 120,
            "drain_seconds": 10, "keep_warm_seconds": 300, "watch_seconds": 30, "keep_images": 5,
            "strategy_json": '{"steps": [{"weight": 10, "wait": null}]}',
            "env_set": "DATABASE_URL=postgres://user:hunter2@db/app\nDEBUG=0", "webhook_secret_new": "n3w-secret"}
    response = client.post("/projects/hello/settings/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    project.refresh_from_db()
    assert project.port == 8080 and project.replicas == 2
    assert project.strategy == {"steps": [{"weight": 10, "wait": None}]}
    assert project.env == {"DATABASE_URL": "postgres://user:hunter2@db/app", "DEBUG": "0"}
    assert project.webhook_secret == "n3w-secret"
    page = client.get("/projects/hello/settings/").content.decode()
    assert "DATABASE_URL" in page and "hunter2" not in page and "n3w-secret" not in page
    entry = AuditEntry.objects.get(action="project.update")
    assert entry.actor == people["admin"] and "hunter2" not in str(entry.data) and "n3w-secret" not in str(entry.data)
    assert entry.data["env"] == {"changed": ["DATABASE_URL", "DEBUG"]}
    # Removing one variable keeps the others; an invalid strategy is a form error, not a 500.
    client.post("/projects/hello/settings/", {**form, "env_set": "", "webhook_secret_new": "", "env_remove": ["DEBUG"]})
    project.refresh_from_db()
    assert project.env == {"DATABASE_URL": "postgres://user:hunter2@db/app"} and project.webhook_secret == "n3w-secret"
    bad = client.post("/projects/hello/settings/", {**form, "strategy_json": '{"steps": [{"weight": 500}]}'})
    assert bad.status_code == 400 and "weight must be" in bad.content.decode()



def test_settings_move_a_project_to_a_registered_cluster(project, people, login, settings):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "KUBE_CLUSTERS": {"eu": {"kubeconfig": "/etc/eu.yaml"}}}
    client = login(people["staff"])
    page = client.get("/projects/hello/settings/").content.decode()
    assert '<option value="eu">eu</option>' in page and "The platform&#x27;s own cluster" in page
    form = {"name": "Hello", "repository": "octo/hello", "production_branch": "main", "runtime": "kubernetes",
            "cluster": "mars", "router": "default", "dockerfile": "Dockerfile", "port": 8000, "replicas": 1,
            "memory_mb": 512, "cpus": 1,
            "startup_probe_path": "/healthz", "readiness_probe_path": "/readyz", "liveness_probe_path": "/healthz",
            "probe_period_seconds": 1, "probe_timeout_seconds": 1, "probe_failure_threshold": 3,
            "probe_success_threshold": 1, "probe_initial_delay_seconds": 0, "ready_timeout_seconds": 120,
            "drain_seconds": 10, "keep_warm_seconds": 30, "watch_seconds": 30, "keep_images": 5}
    response = client.post("/projects/hello/settings/", form)
    assert response.status_code == 400  # the form again, saying what is wrong
    assert "mars" in response.content.decode()
    project.refresh_from_db()
    assert project.cluster == "" and project.runtime == "single-host"
    # The project's own admin is not platform staff: the cluster is the operator's choice.
    refused = login(people["admin"]).post("/projects/hello/settings/", {**form, "cluster": "eu"})
    assert refused.status_code == 400 and "only platform staff" in refused.content.decode()
    project.refresh_from_db()
    assert project.cluster == ""
    response = login(people["staff"]).post("/projects/hello/settings/", {**form, "cluster": "eu"})
    assert response.status_code == 302, response.content.decode()[:3000]
    project.refresh_from_db()
    assert project.cluster == "eu" and project.runtime == "kubernetes"
    assert "cluster <code>eu</code>" in login(people["viewer"]).get("/projects/hello/").content.decode()

def test_members_page_add_change_remove_with_audit(project, people, login):
    client = login(people["admin"])
    assert "stranger" not in client.get("/projects/hello/members/").content.decode()
    client.post("/projects/hello/members/set/", {"username": "stranger", "role": "viewer"})
    assert Membership.objects.get(user=people["stranger"]).role == "viewer"
    client.post("/projects/hello/members/set/", {"username": "stranger", "role": "deployer"})
    assert Membership.objects.get(user=people["stranger"]).role == "deployer"
    client.post("/projects/hello/members/stranger/remove/")
    assert not Membership.objects.filter(user=people["stranger"]).exists()
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "project.create", "member.add", "member.role", "member.remove"]
    # The last admin cannot demote themselves; a deployer cannot manage members.
    last = client.post("/projects/hello/members/set/", {"username": "admin", "role": "viewer"})
    assert last.status_code == 409 and "last admin" in last.content.decode()
    refused = login(people["deployer"]).post("/projects/hello/members/set/", {"username": "viewer", "role": "admin"})
    assert refused.status_code == 403 and Membership.objects.get(user=people["viewer"]).role == "viewer"


def test_activity_feed_shows_audit_entries(project, people, login, django_capture_on_commit_callbacks):
    history_make(project, 2, live=2)
    client = login(people["deployer"])
    with django_capture_on_commit_callbacks(execute=False):
        client.post("/projects/hello/deployments/1/rollback/")
    page = login(people["viewer"]).get("/projects/hello/activity/").content.decode()
    assert "deployment.rollback" in page and "deployer" in page and "rollback to #1" in page


def test_account_token_shown_once_and_regenerated(people, login):
    import re

    from knox.models import AuthToken
    from rest_framework.test import APIClient

    client = login(people["viewer"])
    assert "no API token yet" in client.get("/account/").content.decode()
    made = client.post("/account/")
    assert "no-store" in made["Cache-Control"]
    first = re.search(r'<code id="api-token">([^<]+)</code>', made.content.decode()).group(1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert api.get("/api/projects/").status_code == 200
    # Shown once: the page later says one exists, never what it is; the database holds a digest.
    later = client.get("/account/").content.decode()
    assert first not in later and "not shown again" in later
    stored = AuthToken.objects.get(user=people["viewer"])
    assert first not in (stored.digest, stored.token_key) and len(stored.digest) == 128

    second = re.search(r'<code id="api-token">([^<]+)</code>', client.post("/account/").content.decode()).group(1)
    assert second != first
    assert api.get("/api/projects/").status_code == 401  # the old token stopped working at once
    api.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert api.get("/api/projects/").status_code == 200
    assert AuditEntry.objects.filter(action="token.regenerate", actor=people["viewer"]).count() == 2


def test_overview_shows_live_state_and_last_deployments(project, people, login, make_project):
    history_make(project, 6, live=5)
    other = make_project(slug="other", name="Other", repository="octo/other")
    Membership.objects.create(project=other, user=people["viewer"], role="viewer")
    Deployment.objects.create(project=other, number=1, commit_sha="d" * 40, trigger="api", state=State.SWITCHING,
                              config=other.runtime_config(), progress={"weights": {"1": 10}})
    page = login(people["viewer"]).get("/").content.decode()
    assert "#5" in page and "rolling out #1" in page and "rev 1 10%" in page
    assert page.count("/projects/hello/deployments/") >= 5


@pytest.mark.parametrize("rows", [3, 25])
def test_project_page_uses_a_constant_number_of_queries(project, people, login, rows):
    counts = {}
    client = login(people["deployer"])
    Deployment.objects.all().delete()
    for total in (rows, 200):
        Project.objects.filter(pk=project.pk).update(live_deployment=None)
        Deployment.objects.all().delete()
        history_make(project, total, live=total - 1)
        for variant, kwargs in (("page", {}), ("partial", HTMX)):
            with CaptureQueriesContext(connection) as ctx:
                assert client.get("/projects/hello/", **kwargs).status_code == 200
            counts[(total, variant)] = len(ctx)
    assert counts[(rows, "page")] == counts[(200, "page")]
    assert counts[(rows, "partial")] == counts[(200, "partial")]
    # The page: session, user, project, role, history, live, in flight, rollback targets (the
    # shown revisions' rows, then the full rows of the kept ones the runtime is asked about), the
    # GitHub reporting status line...: a fixed budget, whatever the row count.
    assert counts[(200, "page")] <= 15


def test_staff_create_a_project_from_the_dashboard_and_become_its_admin(client, django_user_model):
    from deployments.models import AuditEntry, Membership, Project

    staff = django_user_model.objects.create_user("root-ops", password="pw-123456", is_staff=True)
    client.force_login(staff)
    assert 'href="/new-project/"' in client.get("/").content.decode()
    form = {"name": "Shop", "slug": "shop", "repository": "acme/shop", "production_branch": "main",
            "clone_url": "", "runtime": "single-host", "webhook_secret": "s3cret"}
    response = client.post("/new-project/", form)
    assert response.status_code == 302 and response["Location"] == "/projects/shop/settings/"
    project = Project.objects.get(slug="shop")
    assert project.webhook_secret == "s3cret" and project.repository == "acme/shop"
    assert Membership.objects.get(project=project, user=staff).role == "admin"
    assert AuditEntry.objects.filter(action="project.create", project=project).exists()
    # A bad slug is a readable form error, and nothing is created.
    bad = client.post("/new-project/", {**form, "slug": "Bad Slug!", "repository": "acme/other"})
    assert bad.status_code == 400 and "slug" in bad.content.decode()
    again = client.post("/new-project/", form)
    assert again.status_code == 400 and "already exists" in again.content.decode()
    assert Project.objects.count() == 1


def test_non_staff_are_refused_project_creation(client, django_user_model):
    user = django_user_model.objects.create_user("dev", password="pw-123456")
    client.force_login(user)
    assert 'href="/new-project/"' not in client.get("/").content.decode()
    response = client.post("/new-project/", {"name": "x", "slug": "x", "repository": "a/b",
                                             "production_branch": "main", "runtime": "single-host"})
    assert response.status_code == 403 and "Only staff" in response.content.decode()


SETTINGS_FORM = {"name": "Hello", "repository": "octo/hello", "production_branch": "main", "runtime": "single-host",
                 "router": "default", "dockerfile": "Dockerfile", "port": 8000, "replicas": 1, "memory_mb": 512,
                 "cpus": 1, "startup_probe_path": "/healthz", "readiness_probe_path": "/readyz",
                 "liveness_probe_path": "/healthz", "probe_period_seconds": 1, "probe_timeout_seconds": 1,
                 "probe_failure_threshold": 3, "probe_success_threshold": 1, "probe_initial_delay_seconds": 0,
                 "ready_timeout_seconds": 120, "drain_seconds": 10, "keep_warm_seconds": 300, "watch_seconds": 30,
                 "keep_images": 5}


def _field_block(page: str, name: str) -> str:
    """The <div class="field"> that holds the input named ``name``."""
    at = page.index(f'name="{name}"')
    return page[page.rindex('<div class="field', 0, at):page.index("</div>", at)]


def test_settings_inputs_carry_the_servers_limits(project, people, login, settings):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "MAX_MEMORY_MB": 2048}
    page = login(people["admin"]).get("/projects/hello/settings/").content.decode()
    replicas = _field_block(page, "replicas")
    assert 'min="1"' in replicas and 'max="50"' in replicas and 'min="0"' not in replicas
    assert 'min="1"' in _field_block(page, "port") and 'max="65535"' in _field_block(page, "port")
    assert 'max="2048"' in _field_block(page, "memory_mb") and 'min="32"' in _field_block(page, "memory_mb")
    assert 'min="0.05"' in _field_block(page, "cpus")


@pytest.mark.parametrize(("field", "value", "words"), [
    ("replicas", 51, "less than or equal to 50"),
    ("replicas", 0, "greater than or equal to 1"),
    ("memory_mb", 999999, "SWITCHBACK_MAX_MEMORY_MB"),
])
def test_a_settings_error_sits_beside_its_field_with_its_label(project, people, login, field, value, words):
    response = login(people["admin"]).post("/projects/hello/settings/", {**SETTINGS_FORM, field: value})
    assert response.status_code == 400
    page = response.content.decode()
    block = _field_block(page, field)
    assert words in block and 'class="error"' in block
    label = Project._meta.get_field(field).verbose_name
    assert f">{label.capitalize()}</label>" in block or f">{label}</label>" in block
    assert f"{field}:" not in page  # never the internal field name
    assert 'role="alert">' not in page.split('<div class="field', 1)[0].split("<form", 1)[-1]  # nothing on top


def test_the_webhook_url_comes_from_the_request_unless_configured(project, people, login, settings):
    client = login(people["admin"])
    settings.SWITCHBACK = {**settings.SWITCHBACK, "PUBLIC_URL_SET": False}
    page = client.get("/projects/hello/settings/", HTTP_HOST="127.0.0.1:9000").content.decode()
    assert f"http://127.0.0.1:9000/webhooks/github/{project.webhook_id}/" in page
    api = client.get("/api/projects/hello/", HTTP_HOST="127.0.0.1:9000").json()
    assert api["webhook_url"] == f"http://127.0.0.1:9000/webhooks/github/{project.webhook_id}/"
    settings.SWITCHBACK = {**settings.SWITCHBACK, "PUBLIC_URL_SET": True, "PUBLIC_URL": "https://sb.example.com"}
    page = client.get("/projects/hello/settings/", HTTP_HOST="127.0.0.1:9000").content.decode()
    assert f"https://sb.example.com/webhooks/github/{project.webhook_id}/" in page


def test_the_history_watcher_answers_204_until_something_changes(project, people, login):
    from deployments.selectors import deployment_open, history_fingerprint
    from deployments.services import deployment_request

    client = login(people["viewer"])
    page = client.get("/projects/hello/").content.decode()
    since = history_fingerprint(project=project, opened=deployment_open(project=project))
    assert f"/projects/hello/changes/?since={since}" in page and 'hx-trigger="every 500ms"' in page
    unchanged = client.get(f"/projects/hello/changes/?since={since}", **HTMX)
    assert unchanged.status_code == 204 and not unchanged.content
    deployment_request(project=project, sha="a" * 40, actor=people["admin"])
    changed = client.get(f"/projects/hello/changes/?since={since}", **HTMX)
    assert changed.status_code == 200 and changed["HX-Trigger"] == "sb-changed"
    project.refresh_from_db()
    new = history_fingerprint(project=project, opened=deployment_open(project=project))
    assert new != since and f"since={new}" in changed.content.decode()
    assert login(people["stranger"]).get(f"/projects/hello/changes/?since={since}").status_code in (403, 404)
