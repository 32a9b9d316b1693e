"""The exact GitHub deployments and statuses a rollout produces (fake GitHub over HTTP)."""

from __future__ import annotations

import pytest

from deployments import watch
from deployments.models import Deployment, Project, State
from deployments.runtimes.base import LivenessFailure
from deployments.services import deployment_request, deployment_rollback
from reporting.models import GitHubConnection, Report
from tests.reporting.conftest import SHA_A, SHA_B, SHA_C, send_all
from tests.rollout import rollout_drive_until_wait as drive

pytestmark = pytest.mark.django_db(transaction=True)


def deploy(project, user, sha):
    return drive(deployment_request(project=project, sha=sha, actor=user))


def statuses(fake, index):
    github_id = sorted(fake.deployments)[index]
    return fake.statuses[github_id]


def test_a_deploy_is_a_github_deployment_then_queued_in_progress_success(gh_project, user, fake_github):
    d = deploy(gh_project, user, SHA_A)
    assert d.state == State.SUCCEEDED
    send_all()
    assert fake_github.sequence() == [
        ("deployment", SHA_A, "production"),
        ("status", 0, "queued"), ("status", 0, "in_progress"), ("status", 0, "success"),
    ]
    created = fake_github.calls("POST", r"/deployments$")[0]
    assert created.body["required_contexts"] == [] and created.body["auto_merge"] is False
    assert created.body["payload"]["switchback_deployment"] == 1
    assert created.headers["authorization"] == "Bearer good-token"
    assert created.headers["x-github-api-version"] == "2022-11-28"
    page = "https://switchback.example.com/projects/hello/deployments/1/"
    assert all(s["log_url"] == page for s in statuses(fake_github, 0))
    assert statuses(fake_github, 0)[-1]["environment_url"] == "https://hello.apps.example.com"
    assert Report.objects.filter(state=Report.State.SENT).count() == 4
    assert Report.objects.exclude(state=Report.State.SENT).count() == 0


def test_a_failed_deploy_reports_failure_with_the_reason(gh_project, user, fake_github, memory_runtime):
    memory_runtime.fail_build[SHA_A] = "step 2 RUN make exited 2"
    d = deploy(gh_project, user, SHA_A)
    assert d.state == State.FAILED
    send_all()
    assert fake_github.sequence() == [
        ("deployment", SHA_A, "production"),
        ("status", 0, "queued"), ("status", 0, "in_progress"), ("status", 0, "failure"),
    ]
    assert "RUN make exited 2" in statuses(fake_github, 0)[-1]["description"]


def test_a_newer_deploy_marks_the_replaced_one_inactive(gh_project, user, fake_github):
    deploy(gh_project, user, SHA_A)
    deploy(gh_project, user, SHA_B)
    send_all()
    assert fake_github.sequence() == [
        ("deployment", SHA_A, "production"),
        ("status", 0, "queued"), ("status", 0, "in_progress"), ("status", 0, "success"),
        ("deployment", SHA_B, "production"),
        ("status", 1, "queued"), ("status", 1, "in_progress"), ("status", 1, "success"),
        ("status", 0, "inactive"),
    ]
    assert statuses(fake_github, 0)[-1]["description"] == "Replaced by #2"


def test_a_rollback_is_a_new_successful_deployment_of_the_earlier_commit(gh_project, user, fake_github):
    deploy(gh_project, user, SHA_A)
    deploy(gh_project, user, SHA_B)
    send_all()
    before = len(fake_github.sequence())
    rollback = drive(deployment_rollback(project=gh_project, number=1, actor=user))
    assert rollback.state == State.SUCCEEDED
    send_all()
    assert fake_github.sequence()[before:] == [
        ("deployment", SHA_A, "production"),
        ("status", 2, "queued"), ("status", 2, "in_progress"), ("status", 2, "success"),
        ("status", 1, "inactive"),
    ]
    created = fake_github.calls("POST", r"/deployments$")[-1]
    assert created.body["description"] == "Rollback from #2 to #1 (#3) by alice"
    assert created.body["payload"] == {"switchback_deployment": 3, "project": "hello", "trigger": "rollback",
                                       "rollback_to": 1, "rollback_from": 2, "automatic": False}
    assert statuses(fake_github, 2)[-1]["description"] == "Rollback from #2 to #1 (#3) by alice"


def test_a_gates_automatic_rollback_says_why(gh_project, user, fake_github, memory_runtime):
    deploy(gh_project, user, SHA_A)
    Project.objects.filter(pk=gh_project.pk).update(watch_seconds=60)
    gh_project.refresh_from_db()
    d2 = deploy(gh_project, user, SHA_B)
    memory_runtime.liveness_failures = [LivenessFailure("2", "replica 0: liveness /healthz timed out; restarted")]
    assert watch.rollout_watch_step(deployment_id=d2.pk) is None
    rollback = Deployment.objects.get(number=3)
    assert drive(rollback).state == State.SUCCEEDED
    send_all()
    assert fake_github.sequence()[8:] == [
        ("status", 0, "inactive"),  # #2 replaced #1
        ("status", 1, "failure"),  # #2 failed after going live
        ("deployment", SHA_A, "production"),
        ("status", 2, "queued"), ("status", 2, "in_progress"), ("status", 2, "success"),
        ("status", 1, "inactive"),
    ]
    assert "liveness /healthz timed out" in statuses(fake_github, 1)[-2]["description"]
    success = statuses(fake_github, 2)[-1]["description"]
    assert success.startswith("Automatic rollback from #2 to #1 (#3): replica 0: liveness /healthz timed out")


def test_a_superseded_deployment_is_inactive_and_never_in_progress(gh_project, user, fake_github):
    first = deployment_request(project=gh_project, sha=SHA_A, actor=user)
    second = deployment_request(project=gh_project, sha=SHA_B, actor=user)  # supersedes #1 before it starts
    first.refresh_from_db()
    assert first.state == State.SUPERSEDED
    assert drive(second).state == State.SUCCEEDED
    send_all()
    assert fake_github.sequence() == [
        ("deployment", SHA_A, "production"), ("status", 0, "queued"),
        ("deployment", SHA_B, "production"), ("status", 1, "queued"),
        ("status", 0, "inactive"),
        ("status", 1, "in_progress"), ("status", 1, "success"),
    ]
    assert statuses(fake_github, 0)[-1]["description"] == "Superseded by #2 before it started."


def test_commit_status_is_optional_and_named_switchback_deploy(gh_project, user, fake_github, memory_runtime):
    GitHubConnection.objects.filter(project=gh_project).update(commit_status=True, environment="prod-eu")
    deploy(gh_project, user, SHA_A)
    memory_runtime.fail_build[SHA_C] = "no Dockerfile"
    deploy(gh_project, user, SHA_C)
    send_all()
    commit = [(s["sha"][:1], s["state"], s["context"]) for s in fake_github.commit_statuses]
    assert commit == [("a", "pending", "switchback/deploy"), ("a", "success", "switchback/deploy"),
                      ("c", "pending", "switchback/deploy"), ("c", "failure", "switchback/deploy")]
    assert {d["environment"] for d in fake_github.deployments.values()} == {"prod-eu"}


def test_a_project_without_github_reporting_writes_no_rows(make_project, memory_runtime, user, fake_github):
    project = make_project(slug="quiet", repository="octo/quiet")
    deploy(project, user, SHA_A)
    assert Report.objects.count() == 0 and fake_github.requests == []
