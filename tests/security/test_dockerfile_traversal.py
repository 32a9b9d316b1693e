"""Attack: read a host file through the project's `dockerfile` path.

`dockerfile: "../../some/host/file"` passed the old isfile check; docker-py read the file
from the worker's disk and the engine's parse error quoted it into failure_reason (the
Django SECRET_KEY leaked this way; issue 9, item 2). Each test plants a unique secret in a
host file outside the checkout, attacks it through the API or a real Podman build, and
asserts that it is refused, that nothing was built and that the secret appears nowhere.
"""

from __future__ import annotations

import os
import uuid

import pytest

from deployments.errors import PermanentError
from deployments.models import Membership, Project, Role
from deployments.runtimes.base import BuildSpec
from deployments.runtimes.single_host.images import find_image, image_tag
from deployments.sources import SourceRefused

pytestmark = pytest.mark.containers

TRAVERSALS = ["../../etc/passwd", "/etc/passwd", "a/../../etc/passwd", "..", "-f", "~root/.bashrc", "a//b",
              "Dockerfile\x00", "Docker file", "..\\..\\etc\\passwd", ""]


@pytest.fixture
def admin_api(api, user, make_project):
    project = make_project(slug="victim", repository="acme/victim")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return api


@pytest.mark.django_db
@pytest.mark.parametrize("path", TRAVERSALS)
def test_api_refuses_a_dockerfile_path_out_of_the_repository(admin_api, path):
    response = admin_api.patch("/api/projects/victim/", {"dockerfile": path}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    if "\x00" in str(path):  # the API's parser refuses a NUL anywhere in a body, before any field
        assert body["error"] == "parse_error" and "NUL" in body["message"]
    else:
        assert body["error"] == "invalid" and "dockerfile" in body["message"]
    assert Project.objects.get(slug="victim").dockerfile == "Dockerfile"


@pytest.mark.django_db
def test_api_accepts_a_build_file_in_a_subfolder(admin_api):
    response = admin_api.patch("/api/projects/victim/", {"dockerfile": "docker/app.Dockerfile"}, format="json")
    assert response.status_code == 200, response.content


@pytest.fixture
def host_secret(tmp_path):
    """A host file outside any checkout, holding a value no build may ever show."""
    value = f"SECRET_KEY=host-secret-{uuid.uuid4().hex}"
    path = tmp_path / "host" / "settings.env"
    path.parent.mkdir()
    path.write_text(f"{value}\n")
    return str(path), value


def _build(runtime, project, sha, url, dockerfile):
    lines: list[str] = []
    spec = BuildSpec(project=project, sha=sha, clone_url=url, dockerfile=dockerfile)
    with pytest.raises(PermanentError) as info:
        runtime.build(spec=spec, log=lines.append)
    return info.value, "\n".join(lines)


def test_a_traversing_path_stored_before_validation_neither_leaks_nor_builds(runtime, engine, project_prefix,
                                                                             git_repo, host_secret):
    secret_path, secret = host_secret
    sha = git_repo.commit_files({"Dockerfile": "FROM localhost/switchback/busybox\n"})
    project = f"{project_prefix}-trav"
    error, log = _build(runtime, project, sha, git_repo.url, "../" * 12 + secret_path.lstrip("/"))
    assert secret not in error.message and secret not in log
    assert isinstance(error, SourceRefused)
    assert find_image(engine.client, image_tag(project, sha, instance=runtime.instance)) is None


def test_a_dockerfile_symlink_to_a_host_file_neither_leaks_nor_builds(runtime, engine, project_prefix, git_repo,
                                                                      host_secret):
    secret_path, secret = host_secret
    os.symlink(secret_path, os.path.join(git_repo.path, "Dockerfile"))
    sha = git_repo.commit_files({"README": "a symlinked build file"})
    project = f"{project_prefix}-link"
    error, log = _build(runtime, project, sha, git_repo.url, "Dockerfile")
    assert secret not in error.message and secret not in log
    assert isinstance(error, SourceRefused) and "outside the repository" in error.message
    assert find_image(engine.client, image_tag(project, sha, instance=runtime.instance)) is None


def test_a_dockerignore_symlink_to_a_host_file_is_refused(runtime, engine, project_prefix, git_repo, host_secret):
    secret_path, secret = host_secret
    os.symlink(secret_path, os.path.join(git_repo.path, ".dockerignore"))
    sha = git_repo.commit_files({"Dockerfile": "FROM localhost/switchback/busybox\n"})
    project = f"{project_prefix}-ign"
    error, log = _build(runtime, project, sha, git_repo.url, "Dockerfile")
    assert isinstance(error, SourceRefused) and secret not in error.message + log
    assert find_image(engine.client, image_tag(project, sha, instance=runtime.instance)) is None


def test_copying_a_symlink_to_a_host_file_does_not_read_the_host(runtime, engine, project_prefix, git_repo,
                                                                 host_secret):
    # The build context is sent as a tar with symlinks kept as links; the engine resolves
    # them inside the context, so the host file is never copied into the image.
    secret_path, secret = host_secret
    os.symlink(secret_path, os.path.join(git_repo.path, "leak"))
    sha = git_repo.commit_files({"Dockerfile": "FROM localhost/switchback/busybox\nCOPY leak /leak\n"
                                               "RUN cat /leak; exit 3\n"})
    project = f"{project_prefix}-copy"
    lines: list[str] = []
    with pytest.raises(PermanentError) as info:
        runtime.build(spec=BuildSpec(project=project, sha=sha, clone_url=git_repo.url), log=lines.append)
    assert secret not in info.value.message and secret not in "\n".join(lines)
    assert find_image(engine.client, image_tag(project, sha, instance=runtime.instance)) is None
