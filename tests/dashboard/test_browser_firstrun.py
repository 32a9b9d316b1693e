"""Chromium on the dashboard (issue 15): a settings error sits beside its field, the
browser's limits are the server's, and the History learns of a deployment made through
the API from its 500 ms watcher, not from the 5 s refresh.

Time is the page's fake clock (Playwright's clock API), paused and advanced by the test:
no sleeps, no timed assert.  The network is real: pytest-django's live_server.
"""

from __future__ import annotations

import time

import pytest
import requests

from deployments.models import Membership, Role
from tests.dashboard.test_browser import ARGS, ARTIFACTS, CHROMIUM, chromium_session, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def short_connections():
    from django.db import connections

    settings_dict = connections.settings["default"]
    previous = settings_dict.get("CONN_MAX_AGE", 0)
    settings_dict["CONN_MAX_AGE"] = 0
    yield
    settings_dict["CONN_MAX_AGE"] = previous


def test_settings_error_beside_its_field_and_limits_in_the_browser(short_connections, live_server, make_project,
                                                                     django_user_model):
    admin = django_user_model.objects.create_user("ada", password="ada-pw-42")
    project = make_project()
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    with chromium_session() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = log_in(browser, live_server, "ada", "ada-pw-42")
            page.goto(f"{live_server.url}/projects/hello/settings/")
            replicas = page.locator("input[name=replicas]")
            assert replicas.get_attribute("min") == "1" and replicas.get_attribute("max") == "50"
            replicas.fill("0")
            # The browser refuses 0 itself, as the server would.
            assert replicas.evaluate("el => el.checkValidity()") is False
            replicas.fill("2")
            page.fill("textarea[name=strategy_json]", '{"steps": [{"weight": 500}]}')
            page.click("form.settings button[type=submit]")
            page.wait_for_selector("small.error")
            field = page.locator("div.field", has=page.locator("textarea[name=strategy_json]"))
            assert field.locator("label").inner_text() == "Strategy"
            assert "weight must be" in field.locator("small.error").inner_text()
            errors = page.locator("small.error")
            assert errors.count() == 1  # only beside that field, nothing on top of the form
            assert page.locator("form p.error").count() == 0
            page.screenshot(path=str(ARTIFACTS / "settings-error-beside-field.png"), full_page=True)
        finally:
            browser.close()


def test_history_shows_an_api_deployment_from_the_fast_watcher(short_connections, live_server, make_project,
                                                                 django_user_model):
    from knox.models import AuthToken

    user = django_user_model.objects.create_user("dora", password="dora-pw-42")
    project = make_project()
    Membership.objects.create(project=project, user=user, role=Role.DEPLOYER)
    _, token = AuthToken.objects.create(user=user)
    with chromium_session() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = log_in(browser, live_server, "dora", "dora-pw-42")
            page.clock.install()
            page.goto(f"{live_server.url}/projects/hello/")
            # From here on the page's time moves only when the test says so.
            page.clock.pause_at(time.time() + 1)
            refreshes = []

            def history_refresh(request):
                if request.url.split("?")[0] == f"{live_server.url}/projects/hello/" and request.headers.get(
                        "hx-request"):
                    refreshes.append(request.url)

            page.on("request", history_refresh)
            assert page.locator("#deployment-1").count() == 0
            made = requests.post(f"{live_server.url}/api/projects/hello/deployments/",
                                 json={"sha": "a" * 40}, headers={"Authorization": f"Token {token}"}, timeout=10)
            assert made.status_code in (201, 202), made.text
            page.clock.run_for(600)  # one watcher tick (500 ms); the full refresh is every 5 s
            from playwright.sync_api import expect

            # Real network time for the watcher's answer and the history it triggers; no page time passes.
            expect(page.locator("#deployment-1")).to_be_visible(timeout=15_000)
            assert "aaaaaaa" in page.inner_text("#deployment-1")
            assert refreshes, "the history refreshed on the watcher's sb-changed event"
            page.screenshot(path=str(ARTIFACTS / "history-api-deployment.png"), full_page=True)
        finally:
            browser.close()
