"""The clone_url attacks through a whole deployment: the real engine, the real single-host
runtime (Podman), a project row that holds the attack (written before validation existed,
or around it). The deployment fails once with a message, is never retried (a retry ran the
command again before), runs nothing, and keeps no secret from the URL anywhere."""

from __future__ import annotations

import json
import uuid

import pytest

from deployments.models import Deployment, DeploymentEvent, Project, State
from deployments.runtimes import _cache, runtime_cache_clear
from deployments.services import deployment_request
from tests.rollout import rollout_drive

pytestmark = [pytest.mark.containers, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def platform(runtime):
    runtime_cache_clear()
    _cache[("single-host", "")] = runtime
    yield runtime
    runtime_cache_clear()


@pytest.fixture
def project(platform, project_prefix, make_project, git_repo):
    sha = git_repo.commit_example("hello")
    project = make_project(slug=f"{project_prefix}-attack", repository="acme/attack", clone_url=git_repo.url)
    return project, sha


def deploy_with(project: Project, sha: str, clone_url: str) -> Deployment:
    Project.objects.filter(pk=project.pk).update(clone_url=clone_url)  # around validation
    deployment = deployment_request(project=Project.objects.get(pk=project.pk), sha=sha, actor=None)
    # rollout_drive would raise a TransientError (the task's retry) instead of returning.
    return rollout_drive(deployment, deadline=60)


def test_option_injection_fails_the_deployment_once_and_runs_nothing(project, tmp_path):
    project, sha = project
    marker = tmp_path / "pwned"
    deployment = deploy_with(project, sha, f"--upload-pack=sh -c 'touch {marker}'; :")
    assert deployment.state == State.FAILED
    assert deployment.failure_reason.startswith("clone_url: ")
    assert not marker.exists()


def test_a_token_in_an_old_clone_url_is_never_shown(project):
    project, sha = project
    token = f"ghp_{uuid.uuid4().hex}"
    deployment = deploy_with(project, sha, f"https://x-access-token:{token}@github.com/acme/attack.git")
    assert deployment.state == State.FAILED and "credentials" in deployment.failure_reason
    seen = json.dumps([list(Deployment.objects.filter(pk=deployment.pk).values()),
                       list(DeploymentEvent.objects.filter(deployment=deployment).values())], default=str)
    assert token not in seen


def test_a_local_host_fails_the_deployment_without_a_request(project):
    project, sha = project
    deployment = deploy_with(project, sha, "https://169.254.169.254/latest/meta-data")
    assert deployment.state == State.FAILED and "SWITCHBACK_ALLOWED_SOURCE_HOSTS" in deployment.failure_reason
