"""Errors (issue 9, item 6): DEBUG is off outside the tests, and errors never show a debug page.

The embedded default (`manage.py up`, config.settings.local) used to run with DEBUG on: an
unauthenticated webhook that crashed got a 117 KB page with the settings and the source.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["config.settings.local", "config.settings.production"])
@pytest.mark.parametrize("debug", [None, "1", "true"])
def test_debug_is_off_in_every_settings_but_the_tests(module, debug, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_SETTINGS_MODULE")}
    env.update(DJANGO_SETTINGS_MODULE=module, SWITCHBACK_VAR_DIR=str(tmp_path), SECRET_KEY="x" * 50,
               SWITCHBACK_ENCRYPTION_KEYS="dGVzdC1vbmx5LWtleS1ub3Qtc2VjcmV0LTMyYnl0ZXM=")
    if debug is not None:
        env["DEBUG"] = debug
    out = subprocess.run([sys.executable, "-c", "from django.conf import settings; print(settings.DEBUG)"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def crash(*args, **kwargs):
    raise RuntimeError("boom: SECRET-LOCALS-AND-SOURCE")


@pytest.fixture
def crashing(monkeypatch, settings):
    """Every kind of view crashes; the custom handlers answer, never Django's technical page."""
    from deployments import selectors
    from webhooks import views

    monkeypatch.setattr(selectors, "project_list_visible", crash)
    monkeypatch.setattr(selectors, "projects_overview", crash)
    monkeypatch.setattr(views, "delivery_receive", crash)
    return Client(raise_request_exception=False)


@pytest.mark.django_db
@pytest.mark.parametrize("path,method", [("/api/projects/", "get"), ("/webhooks/github/", "post")])
def test_a_crash_in_the_api_or_the_webhook_is_a_json_500(crashing, path, method, django_user_model):
    crashing.force_login(django_user_model.objects.create_user("u", password="pw-u-123456"))
    response = crashing.generic(method.upper(), path, b"{}", content_type="application/json",
                                HTTP_X_GITHUB_EVENT="push", HTTP_X_GITHUB_DELIVERY="d")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "server_error"
    assert b"SECRET-LOCALS" not in response.content and len(response.content) < 300


@pytest.mark.django_db
def test_a_crash_in_the_dashboard_is_a_readable_page(crashing, django_user_model):
    crashing.force_login(django_user_model.objects.create_user("u", password="pw-u-123456"))
    response = crashing.get("/")
    assert response.status_code == 500 and response["Content-Type"].startswith("text/html")
    assert b"Something went wrong" in response.content and b"SECRET-LOCALS" not in response.content
    assert b"Traceback" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/nothing/here/", "/api/projects/%00/", "/api/projects/hello/deployments/x/",
                                  "/webhooks/gitlab/", "/api/projects/hello/deployments/1/nope"])
def test_a_malformed_api_path_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json" and response.json()["error"] == "not_found"


@pytest.mark.django_db
def test_a_missing_page_is_a_readable_page(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and b"There is nothing at this address" in response.content
