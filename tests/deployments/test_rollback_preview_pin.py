"""The rollback preview (image, env NAMES, settings that differ) and the pin a rollback can
set (merges build and warm but do not switch until unpin or promote)."""

import pytest

from deployments.models import Deployment, Project, State, Trigger
from deployments.services import (
    deployment_from_webhook,
    deployment_promote,
    deployment_request,
    project_unpin,
    project_update,
)
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db

drive = rollout_drive_until_wait
SECRET_OLD, SECRET_NEW = "hunter2-old-value", "correct-horse-new-value"


@pytest.fixture
def project(make_project, memory_runtime, user):
    user.is_staff = True  # sees and does everything, as staff does
    user.save()
    return make_project(keep_warm_seconds=300, watch_seconds=0,
                        env={"API_KEY": SECRET_OLD, "REMOVED_LATER": "x", "SAME": "1"})


def two_deployments(project, user):
    drive(deployment_request(project=project, sha="a" * 40, actor=user))
    project_update(project=Project.objects.get(pk=project.pk), actor=user, replicas=2,
                   env={"API_KEY": SECRET_NEW, "ADDED_LATER": "y", "SAME": "1"},
                   readiness_probe_path="/ready-v2")
    project.refresh_from_db()
    drive(deployment_request(project=project, sha="b" * 40, actor=user))


def test_preview_lists_env_names_and_settings_never_values(api, project, user):
    two_deployments(project, user)
    before = Deployment.objects.count()
    response = api.post("/api/projects/hello/deployments/1/rollback/?preview")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["image_live"] == "hello:" + "b" * 40 and body["image_target"] == "hello:" + "a" * 40
    # Rolling back to #1 brings REMOVED_LATER back, drops ADDED_LATER, changes API_KEY's value.
    assert body["env_added"] == ["REMOVED_LATER"] and body["env_removed"] == ["ADDED_LATER"]
    assert body["env_changed"] == ["API_KEY"]
    changed = {c["name"]: (c["live"], c["target"]) for c in body["settings"]}
    assert changed == {"replicas": (2, 1), "readiness_probe_path": ("/ready-v2", "/readyz")}
    assert body["target"]["state"] in ("warm", "cold")
    text = response.content.decode()
    assert SECRET_OLD not in text and SECRET_NEW not in text
    assert Deployment.objects.count() == before  # a preview writes nothing


def test_the_dialog_lists_env_names_and_no_value(client, project, user):
    two_deployments(project, user)
    client.force_login(user)
    page = client.get("/projects/hello/deployments/1/rollback/", HTTP_HX_REQUEST="true").content.decode()
    assert 'class="env-changed">API_KEY<' in page and 'class="env-removed">ADDED_LATER<' in page
    assert SECRET_OLD not in page and SECRET_NEW not in page
    assert 'name="pin"' in page


def test_pinned_merge_is_built_and_warmed_but_switches_only_when_promoted(api, project, user, memory_runtime):
    two_deployments(project, user)
    response = api.post("/api/projects/hello/deployments/1/rollback/", {"pin": True}, format="json")
    assert response.status_code == 202
    drive(Deployment.objects.get(number=3))
    project.refresh_from_db()
    assert project.pinned_at is not None and project.live_deployment.number == 3
    assert api.get("/api/projects/hello/").json()["pinned_at"]

    merge, _ = deployment_from_webhook(project=project, sha="c" * 40, trigger=Trigger.MERGE, message="fix",
                                       author="mona", sender="mona")
    merge = drive(merge)
    assert merge.state == State.SWITCHING  # built, started, probed: held at the pin
    assert ("hello", "4") in memory_runtime.running and memory_runtime.weights["hello"] == {"1": 100}
    assert drive(merge).state == State.SWITCHING  # a re-handed-out step holds again
    page = api.get("/api/projects/hello/deployments/4/").json()
    assert any("pinned" in e["message"] for e in page["events"])

    deployment_promote(project=project, number=4, actor=user)
    merge = drive(merge)
    assert merge.state == State.SUCCEEDED and memory_runtime.weights["hello"] == {"4": 100}
    project.refresh_from_db()
    assert project.pinned_at is not None  # promote releases one deployment; the pin stays


def test_unpin_switches_the_held_merge(project, user, memory_runtime, django_capture_on_commit_callbacks):
    from deployments.services import project_pin

    two_deployments(project, user)
    project_pin(project=project, actor=user, reason="incident 42")
    merge, _ = deployment_from_webhook(project=project, sha="c" * 40, trigger=Trigger.PUSH, message="fix",
                                       author="mona", sender="mona")
    assert drive(merge).state == State.SWITCHING
    # A newer merge replaces the held one; it is held in its turn.
    newer, _ = deployment_from_webhook(project=project, sha="d" * 40, trigger=Trigger.PUSH, message="fix 2",
                                       author="mona", sender="mona")
    assert drive(newer).state == State.SWITCHING
    merge.refresh_from_db()
    assert merge.state == State.SUPERSEDED and ("hello", merge.revision) not in memory_runtime.running
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        project_unpin(project=project, actor=user)
    assert len(callbacks) == 1  # the held merge is handed out again
    assert drive(newer).state == State.SUCCEEDED
    assert memory_runtime.weights["hello"] == {newer.revision: 100}


def test_manual_deploys_are_not_held_by_the_pin(project, user, memory_runtime):
    from deployments.services import project_pin

    two_deployments(project, user)
    project_pin(project=project, actor=user)
    manual = drive(deployment_request(project=project, sha="e" * 40, actor=user))
    assert manual.state == State.SUCCEEDED


def test_a_warm_rollback_switches_within_the_request(api, project, user, memory_runtime, settings):
    two_deployments(project, user)
    response = api.post("/api/projects/hello/deployments/1/rollback/")
    assert response.status_code == 202 and response.json()["state"] == "succeeded"
    assert memory_runtime.weights["hello"] == {"1": 100}
    # A cold target (retired) is left to the worker; so is every rollback with the setting off.
    memory_runtime.running.pop(("hello", "2"))
    assert api.post("/api/projects/hello/deployments/2/rollback/").json()["state"] == "queued"
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ROLLBACK_IN_REQUEST": False}
    drive(Deployment.objects.get(number=4))
    assert api.post("/api/projects/hello/deployments/1/rollback/").json()["state"] == "queued"


def test_a_rollback_tried_in_the_request_is_handed_to_a_worker_only_if_still_to_do(
        api, project, user, memory_runtime, monkeypatch, django_capture_on_commit_callbacks):
    """No worker races the request's own warm check (bench/k8s_rollback.py measured a second
    round of reads): warm, nothing is published; cold, or if the in-request attempt breaks,
    exactly one urgent hand-out."""
    from deployments import dispatch, engine

    sent: list[tuple[int, bool]] = []
    monkeypatch.setattr(dispatch, "rollout_advance_send",
                        lambda *, deployment_id, token, countdown=0, urgent=False: sent.append((deployment_id, urgent)))
    two_deployments(project, user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/projects/hello/deployments/1/rollback/")
    assert response.json()["state"] == "succeeded"
    assert sent == []
    memory_runtime.running.pop(("hello", "2"))  # retired: a cold target
    with django_capture_on_commit_callbacks(execute=True):
        cold = api.post("/api/projects/hello/deployments/2/rollback/").json()
    assert cold["state"] == "queued"
    cold_id = Deployment.objects.get(project=project, number=cold["number"]).pk
    assert sent == [(cold_id, True)]
    drive(Deployment.objects.get(pk=cold_id))

    def broken(*, deployment, locked_project):
        raise RuntimeError("a bug in the in-request switch")

    monkeypatch.setattr(engine, "rollback_switch_locked", broken)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        from deployments.services import deployment_rollback_now

        # The bug is logged, and the rollback is not lost: it goes the worker's way.
        deployment_rollback_now(project=project, number=1, actor=user)
    newest = Deployment.objects.filter(project=project).order_by("-number").first()
    assert newest.state == State.QUEUED and sent == [(newest.pk, True)]


def test_a_rollback_switched_in_the_request_leaves_the_tidying_to_a_worker(
        api, project, user, memory_runtime, monkeypatch, django_capture_on_commit_callbacks):
    """The canary the rollback cancelled keeps running until the worker's tidying removes
    it: the request answers right after the switch, without waiting for the engine."""
    from deployments import dispatch
    from deployments.tasks import revisions_tidy

    tidy: list[int] = []
    monkeypatch.setattr(dispatch, "revisions_tidy_send", lambda *, project_id: tidy.append(project_id))
    two_deployments(project, user)
    Project.objects.filter(pk=project.pk).update(strategy={"steps": [{"weight": 10, "wait": 600}]})
    canary = drive(deployment_request(project=Project.objects.get(pk=project.pk), sha="c" * 40, actor=user))
    assert canary.state == State.SWITCHING and ("hello", "3") in memory_runtime.running
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/projects/hello/deployments/1/rollback/")
    assert response.json()["state"] == "succeeded" and memory_runtime.weights["hello"] == {"1": 100}
    canary.refresh_from_db()
    assert canary.state == State.CANCELLED
    assert tidy == [project.pk] and ("hello", "3") in memory_runtime.running  # not yet: the worker's
    revisions_tidy.run(project.pk)
    assert ("hello", "3") not in memory_runtime.running
