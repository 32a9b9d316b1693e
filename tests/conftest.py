"""Shared fixtures.  Tests talk to the real PostgreSQL and Redis of this machine."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings as django_settings
from django.urls import reverse

from webhooks.github import sign

# Session fixtures for real Podman and HAProxy (engine, runtime, git_repo), shared by the
# runtime tests and the platform's end-to-end tests so one session runs one of each.
pytest_plugins = ["tests.single_host_fixtures"]

CORPORA = Path(os.environ.get("SWITCHBACK_CORPORA", Path(__file__).resolve().parents[2] / "shared" / "corpora"))


def corpus_path(*parts: str) -> Path:
    path = CORPORA.joinpath(*parts)
    if not CORPORA.is_dir():
        pytest.skip(f"third-party corpus not found at {CORPORA} (the acceptance tests replay "
                    "GitHub's real deliveries from ../shared/corpora)")
    return path


@pytest.fixture
def redis_client():
    client = redis_lib.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def memory_runtime(settings):
    """Route every runtime name to the in-memory double for engine tests."""
    from deployments.runtimes import runtime_cache_clear
    from tests.doubles.runtime import memory_runtime as runtime

    settings.SWITCHBACK = {
        **settings.SWITCHBACK,
        "RUNTIMES": {"single-host": "tests.doubles.runtime.factory",
                     "kubernetes": "tests.doubles.runtime.factory"},
    }
    runtime_cache_clear()
    runtime.reset()
    yield runtime
    runtime_cache_clear()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="wonderland-42")


@pytest.fixture
def api(user):
    from rest_framework.test import APIClient

    from deployments.services_members import token_regenerate

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_regenerate(user=user)}")
    return client


@pytest.fixture
def make_project(db):
    from deployments.services import project_create

    def make(**fields):
        defaults = {"name": "Hello", "slug": "hello", "repository": "octo/hello",
                    "production_branch": "main", "webhook_secret": "s3cret"}
        return project_create(actor=None, **{**defaults, **fields})

    return make


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST a delivery the way GitHub does: raw body, signature, lower-case headers.

    To `to`: a project (its own webhook URL) or a path.  By default, the own URL of the
    only project when there is exactly one, else the shared /webhooks/github/.
    """

    def post(event: str, payload, *, secret: str | None = "s3cret", delivery: str | None = None,
             content_type: str = "application/json", body: bytes | None = None, extra=None, to=None):
        from deployments.models import Project

        if body is None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "HTTP_X_GITHUB_EVENT": event,
            "HTTP_X_GITHUB_DELIVERY": delivery or str(uuid.uuid4()),
            "HTTP_USER_AGENT": "GitHub-Hookshot/49819b1",
        }
        if secret is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = sign(secret=secret, body=body)
        headers.update(extra or {})
        if to is None:
            only = list(Project.objects.all()[:2])
            to = only[0] if len(only) == 1 else reverse("webhooks:github")
        if isinstance(to, Project):
            to = reverse("webhooks:github-project", kwargs={"hook_id": to.webhook_id})
        # Run on-commit hooks (the enqueue) as a real commit would, also inside test transactions.
        with django_capture_on_commit_callbacks(execute=True):
            return client.generic("POST", to, body, content_type=content_type, **headers)

    return post
