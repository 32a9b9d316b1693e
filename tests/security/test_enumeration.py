# ruff: noqa: F811 - pytest fixtures imported from tests.dashboard.people are parameters here
"""Enumeration (issue 9, item 8): nobody learns what exists from how they are refused.

- An unauthenticated caller cannot tell a connected repository from an unknown one.
- A user without rights cannot learn that a slug exists: permission comes before validation.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from deployments.models import Project
from tests.dashboard.people import people, project  # noqa: F401 - fixtures
from webhooks.github import sign
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def push(repository: str) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "after": "1" * 40,
                       "repository": {"full_name": repository}}).encode()


def answer(url: str, body: bytes, signature: str | None):
    headers = {"HTTP_X_GITHUB_EVENT": "push", "HTTP_X_GITHUB_DELIVERY": "d-1"}
    if signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    response = Client().generic("POST", url, body, content_type="application/json", **headers)
    return response.status_code, response.json()


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "garbage"])
def test_shared_url_answers_the_same_for_a_connected_and_an_unknown_repository(make_project, signature):
    make_project(repository="octo/connected")
    url = reverse("webhooks:github")
    known = answer(url, push("octo/connected"), signature)
    unknown = answer(url, push("octo/unknown"), signature)
    assert known == unknown and known[0] == 401, (known, unknown)
    assert WebhookDelivery.objects.count() == 0


def test_shared_url_answers_the_same_when_signed_with_a_guessed_secret(make_project):
    make_project(repository="octo/connected", webhook_secret="the-real-one")
    url = reverse("webhooks:github")
    known = answer(url, push("octo/connected"), sign(secret="guess", body=push("octo/connected")))
    unknown = answer(url, push("octo/unknown"), sign(secret="guess", body=push("octo/unknown")))
    assert known == unknown and known[0] == 401


def test_a_project_without_a_secret_is_refused_like_an_unknown_one(make_project):
    make_project(repository="octo/open", webhook_secret="")
    url = reverse("webhooks:github")
    assert answer(url, push("octo/open"), None) == answer(url, push("octo/unknown"), None)


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64])
def test_own_url_answers_the_same_for_a_real_and_a_made_up_hook_id(make_project, signature):
    project = make_project()
    real = reverse("webhooks:github-project", kwargs={"hook_id": project.webhook_id})
    made_up = reverse("webhooks:github-project", kwargs={"hook_id": "A" * len(project.webhook_id)})
    malformed = reverse("webhooks:github-project", kwargs={"hook_id": "x"})
    body = push("octo/hello")
    assert answer(real, body, signature) == answer(made_up, body, signature) == answer(malformed, body, signature)
    assert answer(real, body, signature)[0] == 401


def test_own_url_takes_a_signed_delivery(make_project, django_capture_on_commit_callbacks):
    project = make_project()
    body = push("octo/hello")
    url = reverse("webhooks:github-project", kwargs={"hook_id": project.webhook_id})
    with django_capture_on_commit_callbacks(execute=False):
        status, _ = answer(url, body, sign(secret="s3cret", body=body))
    assert status == 202


def test_each_project_gets_its_own_unguessable_hook_id(make_project):
    ids = {make_project(slug=f"p{i}", repository="octo/same").webhook_id for i in range(20)}
    assert len(ids) == 20 and all(len(i) >= 32 for i in ids)


def test_the_hook_url_is_shown_to_admins_only(project, people):
    def seen_by(role):
        client = APIClient()
        client.force_authenticate(people[role])
        return client.get("/api/projects/hello/").json()["webhook_url"]

    hook = Project.objects.get(slug="hello").webhook_id
    assert seen_by("admin").endswith(f"/webhooks/github/{hook}/")
    assert seen_by("staff").endswith(f"/webhooks/github/{hook}/")
    assert seen_by("viewer") is None and seen_by("deployer") is None
    page = Client()
    page.force_login(people["admin"])
    assert hook in page.get("/projects/hello/settings/").content.decode()


@pytest.mark.parametrize("role", ["stranger", "viewer", "admin"])
def test_a_refused_create_says_nothing_about_existing_slugs(project, people, role):
    client = APIClient()
    client.force_authenticate(people[role])
    taken = client.post("/api/projects/", {"slug": "hello", "repository": "octo/hello"}, format="json")
    free = client.post("/api/projects/", {"slug": "unused", "repository": "octo/hello"}, format="json")
    invalid = client.post("/api/projects/", {"slug": "Not A Slug!"}, format="json")
    assert taken.status_code == free.status_code == invalid.status_code == 403
    assert taken.json() == free.json() == invalid.json()


@pytest.mark.parametrize("method,path,body", [
    ("get", "/api/projects/{slug}/", None),
    ("patch", "/api/projects/{slug}/", {"replicas": "not a number"}),
    ("post", "/api/projects/{slug}/deployments/", {"sha": "bad"}),
    ("post", "/api/projects/{slug}/members/", {"username": "x", "role": "nope"}),
    ("post", "/api/projects/{slug}/deployments/1/rollback/", None),
])
def test_a_stranger_gets_the_same_answer_for_an_existing_and_a_missing_slug(project, people, method, path, body):
    client = APIClient()
    client.force_authenticate(people["stranger"])

    def call(slug):
        response = getattr(client, method)(path.format(slug=slug), body, format="json")
        return response.status_code, json.dumps(response.json()).replace(slug, "<slug>")

    assert call("hello") == call("nohello") and call("hello")[0] == 404
