"""The dashboard around a rollback: one button per revision with its state, a disabled one
with the reason, every history row kept in the answer, the warm panel, 409 codes."""

import re
from datetime import timedelta

import pytest

from deployments.models import Deployment, Project, Trigger
from deployments.selectors import rollout_snapshot
from tests.dashboard.people import history_make
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "history"}


def rows(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="deployment-(\d+)"', page)]


def test_history_keeps_every_row_in_the_answer_to_a_rollback(project, people, login):
    history_make(project, 5, live=5)
    client = login(people["deployer"])
    response = client.post("/projects/hello/deployments/4/rollback/", **HTMX)
    assert response.status_code == 200
    assert rows(response.content.decode()) == [6, 5, 4, 3, 2, 1]


def test_one_rollback_button_per_revision_and_unavailable_ones_disabled(project, people, login, memory_runtime):
    Project.objects.filter(pk=project.pk).update(keep_images=3)
    history_make(project, 8, live=8)
    # #9 ran revision 7 again (a rollback): its row gets no second button for revision 7.
    seven, eight = Deployment.objects.get(number=7), Deployment.objects.get(number=8)
    rollback = Deployment.objects.create(
        project=project, number=9, commit_sha=seven.commit_sha, trigger=Trigger.ROLLBACK, state="succeeded",
        image=seven.image, source=seven, rollback_of=seven, live_at=eight.live_at + timedelta(minutes=5),
        config=project.runtime_config())
    Project.objects.filter(pk=project.pk).update(deployment_counter=9, live_deployment=rollback)
    memory_runtime.pruned.add("hello:6")
    page = login(people["deployer"]).get("/projects/hello/").content.decode()
    offered = re.findall(r'href="[^"]*/deployments/(\d+)/rollback/"', page)
    assert sorted(map(int, offered)) == [5, 8]  # 7 is live (via #9); 6 pruned; 1-4 beyond keep_images
    assert page.count("/deployments/7/rollback/") == 0 and page.count("/deployments/9/rollback/") == 0
    disabled = re.findall(r'<button type="button" class="button rollback rollback-unavailable" disabled\s+'
                          r'title="Unavailable: ([^"]+)"', page)
    assert len(disabled) == 5  # 6 (image gone) and 1-4 (older than the kept revisions)
    assert any("keep_images" in reason and "Redeploy #" in reason for reason in disabled)
    assert "Rollback <span class=\"badge\">cold</span>" in page


def test_a_warm_rollback_panel_says_skipped_warm(make_project, user, memory_runtime):
    from deployments.services import deployment_request, deployment_rollback

    project = make_project(keep_warm_seconds=300, watch_seconds=0)
    for sha in ("a" * 40, "b" * 40):
        rollout_drive_until_wait(deployment_request(project=project, sha=sha, actor=user))
    rollback = rollout_drive_until_wait(deployment_rollback(project=project, number=1, actor=user))
    phases = {p["key"]: (p["status"], p["note"]) for p in rollout_snapshot(deployment=rollback)["phases"]}
    assert phases["start"] == ("skipped", "skipped: warm") and phases["probes"] == ("skipped", "skipped: warm")
    assert phases["build"] == ("skipped", "reused image") and phases["switch"][0] == "done"


def test_conflicts_name_their_code(api, make_project, user, memory_runtime):
    from deployments.models import Membership, Role

    project = make_project()
    Membership.objects.create(project=project, user=user, role=Role.DEPLOYER)
    history_make(project, 2, live=2)
    live = api.post("/api/projects/hello/deployments/2/rollback/")
    assert live.status_code == 409 and live.json()["error"] == "already_live"
    Deployment.objects.filter(number=1).update(state="failed")
    never = api.post("/api/projects/hello/deployments/1/rollback/")
    assert never.status_code == 409 and never.json()["error"] == "not_rollbackable"
    nothing = api.post("/api/projects/hello/deployments/2/promote/")
    assert nothing.status_code == 409 and nothing.json()["error"] == "not_waiting"
    unpinned = api.post("/api/projects/hello/unpin/")
    assert unpinned.status_code == 409 and unpinned.json()["error"] == "not_pinned"
