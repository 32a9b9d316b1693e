"""Attack: run another project's image (issue 9, "Crossing projects").

Even platform staff may only name images from templates the operator allows
(SWITCHBACK_ALLOWED_IMAGE_TEMPLATES), and never the repositories the platform builds other
projects' images into; the engine checks again at deploy time, and the single-host runtime
refuses to start an image labelled for another project (tests/security/test_isolation_network.py).
"""

from __future__ import annotations

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from deployments.errors import PermanentError, ValidationError
from deployments.image_policy import image_template_render, image_template_validate
from deployments.models import AuditEntry, State
from deployments.services import deployment_request, deployment_rollback
from tests.dashboard.people import people, project  # noqa: F401 - fixtures
from tests.rollout import rollout_drive

pytestmark = pytest.mark.django_db

ALLOWED = ["registry.example.com/team/*", "ghcr.io/acme/"]
# What the platform names the images it builds for a project "victim" (Podman's Docker API
# tags a build "victim:<sha>" as docker.io/library/victim; pushes go to <registry>/victim).
OTHER_PROJECTS_IMAGES = [
    "victim:{sha}",
    "victim@sha256:" + "a" * 64,
    "localhost/victim:{sha}",
    "docker.io/library/victim:{sha}",
    "library/victim:{sha}",
    "switchback/victim:{sha}",
    "localhost/switchback/victim:{sha}",
    "127.0.0.1:5000/victim:{sha}",
    # the single host's builds, of this installation or of another sharing the engine
    "sb-local/victim:{sha}",
    "localhost/sb-local/victim:{sha}",
    "docker.io/sb-0a1b2c3d/victim:{sha}",
]
NOT_IMAGE_NAMES = [
    "--privileged", "registry.example.com/team/../victim:{sha}", "registry.example.com/team/app:{sha} -v /:/host",
    "registry.example.com/team/{project.__class__}", "registry.example.com/team/APP:{sha}",
    "registry.example.com/team/app:{sha}\x00", "sha256:" + "b" * 64, "registry.example.com/team/app:" + "t" * 200,
]


@pytest.fixture
def allow(settings):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_IMAGE_TEMPLATES": ALLOWED, "REGISTRY": "127.0.0.1:5000"}
    return settings


@pytest.fixture
def staff_api(people):  # noqa: F811
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(people['staff'])[1]}")
    return client


def patch_template(api, project, template):  # noqa: F811
    audits = AuditEntry.objects.count()
    response = api.patch(f"/api/projects/{project.slug}/", {"image_template": template}, format="json")
    project.refresh_from_db()
    return response, AuditEntry.objects.count() - audits


@pytest.mark.parametrize("template", ["evil.example.net/x:{sha}", "registry.example.com/other/app:{sha}",
                                      "ghcr.io/evil/app:{sha}", "registry.example.com/team-evil/app:{sha}"])
def test_staff_cannot_pick_a_template_outside_the_allow_list(allow, staff_api, project, template):  # noqa: F811
    response, audits = patch_template(staff_api, project, template)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "image_not_allowed"
    assert "SWITCHBACK_ALLOWED_IMAGE_TEMPLATES" in response.json()["message"]
    assert project.image_template == "" and audits == 0


@pytest.mark.parametrize("template", OTHER_PROJECTS_IMAGES)
def test_no_template_names_another_projects_built_images(allow, settings, staff_api, project, template):  # noqa: F811
    # Even an operator who allows everything does not allow this.
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_IMAGE_TEMPLATES": ["*"]}
    response, audits = patch_template(staff_api, project, template)
    assert response.status_code == 400, response.content
    assert project.image_template == "" and audits == 0


@pytest.mark.parametrize("template", NOT_IMAGE_NAMES)
def test_garbage_and_options_are_not_image_names(allow, settings, staff_api, project, template):  # noqa: F811
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_IMAGE_TEMPLATES": ["*"]}
    response, audits = patch_template(staff_api, project, template)
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid", "image_not_allowed", "parse_error")  # a NUL: the parser
    assert project.image_template == "" and audits == 0


@pytest.mark.parametrize("template", ["registry.example.com/team/app:{sha}", "ghcr.io/acme/web:{short_sha}",
                                      "hello:{sha}", "127.0.0.1:5000/hello:{sha}", "INSTALLATION/hello:{sha}"])
def test_allowed_templates_and_the_projects_own_images_are_accepted(allow, staff_api, project, template):  # noqa: F811
    if template.startswith("INSTALLATION/"):  # where this installation's single host builds it
        from deployments.installation import installation_id

        template = template.replace("INSTALLATION", f"sb-{installation_id()}")
    response, audits = patch_template(staff_api, project, template)
    assert response.status_code == 200, response.content
    assert project.image_template == template and audits == 1


def test_an_empty_allow_list_allows_only_the_projects_own_images(settings):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_IMAGE_TEMPLATES": []}
    assert image_template_validate(template="shop:{sha}", project_slug="shop")
    assert image_template_validate(template="", project_slug="shop") == ""
    with pytest.raises(ValidationError, match="none; only the project's own"):
        image_template_validate(template="registry.example.com/team/app:{sha}", project_slug="shop")


def test_the_engine_checks_again_at_deploy_time(allow, settings, memory_runtime, project, people):  # noqa: F811
    # A template saved while the operator allowed it, then taken off the list: the next
    # deployment fails with the reason instead of running the image.
    project.image_template = "registry.example.com/team/app:{sha}"
    project.save(update_fields=["image_template"])
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_IMAGE_TEMPLATES": []}
    deployment = rollout_drive(deployment_request(project=project, sha="c" * 40, actor=people["staff"]))
    assert deployment.state == State.FAILED
    assert "not an image this platform allows" in deployment.failure_reason
    assert deployment.image == ""
    with pytest.raises(PermanentError):
        image_template_render(template="victim:{sha}", project_slug="shop", sha="c" * 40)
    assert image_template_render(template="shop:{short_sha}", project_slug="shop", sha="c" * 40) == "shop:ccccccc"
    # {project} is always the project's own slug: it cannot point at another's images.
    assert image_template_render(template="localhost/{project}:{sha}", project_slug="shop",
                                 sha="c" * 40) == "localhost/shop:" + "c" * 40


def test_no_rollback_to_an_image_the_operator_no_longer_allows(  # noqa: F811
        allow, settings, memory_runtime, project, people):  # noqa: F811
    project.image_template = "registry.example.com/team/app:{sha}"
    project.save(update_fields=["image_template"])
    first = rollout_drive(deployment_request(project=project, sha="e" * 40, actor=people["staff"]))
    assert first.state == State.SUCCEEDED, first.failure_reason
    project.image_template = ""
    project.save(update_fields=["image_template"])
    project.refresh_from_db()
    assert rollout_drive(deployment_request(project=project, sha="f" * 40, actor=people["staff"])).state \
        == State.SUCCEEDED
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_IMAGE_TEMPLATES": []}
    deployments = project.deployments.count()
    with pytest.raises(ValidationError, match="no longer allows"):
        deployment_rollback(project=project, number=first.number, actor=people["staff"])
    assert project.deployments.count() == deployments
