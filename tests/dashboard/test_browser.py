"""A real Chromium drives the dashboard: log in, click Rollback, confirm, see the live revision change.

Uses Debian's /usr/bin/chromium through Playwright (no browser download), pytest-django's
live_server, the in-memory runtime, and Celery in eager mode so the rollback really goes
live during the click.  Screenshots land in test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.models import Membership, Role
from tests.dashboard.people import history_make

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def eager_celery():
    from config.celery import app

    app.loader.import_default_modules()  # autodiscovery: a worker does it at start, eager mode never
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def short_connections():
    """The live server's request threads close their connection after each request (else one
    outlives the thread and blocks dropping the test database)."""
    from django.db import connections

    settings_dict = connections.settings["default"]
    previous = settings_dict.get("CONN_MAX_AGE", 0)
    settings_dict["CONN_MAX_AGE"] = 0
    yield
    settings_dict["CONN_MAX_AGE"] = previous


def chromium_session():
    """Start Playwright only once the test's data is in place: its sync API runs an event
    loop in this thread, and the ORM must not be used from inside it."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    return playwright_api.sync_playwright()


def log_in(browser, live_server, username: str, password: str):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    # The Content-Security-Policy is enforced: every violation Chromium reports is kept.
    page.csp_violations = []
    page.on("console", lambda message: "Content Security Policy" in message.text
            and page.csp_violations.append(message.text))
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def test_rollback_in_the_browser(short_connections, live_server, make_project, memory_runtime, eager_celery,
                                 django_user_model):
    deployer = django_user_model.objects.create_user("dora", password="dora-pw-42")
    viewer = django_user_model.objects.create_user("vic", password="vic-pw-42")
    project = make_project(keep_warm_seconds=300, watch_seconds=0)
    Membership.objects.create(project=project, user=deployer, role=Role.DEPLOYER)
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    history_make(project, 4, live=4)
    for number in ("3", "4"):  # warm revisions the in-memory runtime is running
        memory_runtime.running[("hello", number)] = None
    memory_runtime.weights["hello"] = {"4": 100}
    with chromium_session() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            weights = click_rollback_and_check(browser, live_server)
        finally:
            browser.close()
    assert weights == {"2": 100}
    project.refresh_from_db()
    assert project.live_deployment.number == 5 and project.live_deployment.rollback_of.number == 2
    assert (ARTIFACTS / "rollback-2-after.png").stat().st_size > 0


def click_rollback_and_check(browser, live_server) -> dict:
    from tests.doubles.runtime import memory_runtime

    page = log_in(browser, live_server, "dora", "dora-pw-42")
    page.goto(f"{live_server.url}/projects/hello/")
    assert page.inner_text("#live-number") == "#4"
    page.screenshot(path=str(ARTIFACTS / "rollback-1-before.png"), full_page=True)
    page.evaluate("window.__noReload = true")  # gone if the page reloads
    # The history's row count after every swap of the history (each poll, the rollback's own
    # answer): a rollback must never make it drop a row, not even for one poll.  Other swaps
    # (the change watcher beside it, the dialog) settle too, before the history has news.
    page.evaluate("""window.__rows = [];
      document.body.addEventListener('htmx:afterSettle', (e) => {
        if (!e.detail.target || e.detail.target.id !== 'history') return;
        window.__rows.push(document.querySelectorAll('#deployments tbody tr').length); });""")
    rows_before = page.locator("#deployments tbody tr").count()
    # One button per revision: #4 is live, so it has none; #2 offers a cold or warm rollback.
    assert page.locator("#deployment-4 a.rollback").count() == 0
    page.click("#deployment-2 >> text=Rollback")
    page.wait_for_selector("#rollback-dialog #rollback-confirm")
    dialog = page.inner_text("#rollback-dialog")
    assert "Roll back hello to #2?" in dialog and "Env variables" in dialog
    page.screenshot(path=str(ARTIFACTS / "rollback-1b-dialog.png"), full_page=True)
    page.evaluate("window.__rows = []")
    page.click("#rollback-confirm")
    # Locators and page.evaluate, not wait_for_function: the page's CSP forbids evaluating strings.
    from playwright.sync_api import expect

    expect(page.locator("#live-number")).to_have_text("#5", timeout=15_000)
    # A few more polls of the history (every 5 s, or sb-changed) after the rollback.
    for _ in range(150):  # up to 15 s: the history polls every 5 s
        if page.evaluate("window.__rows.length") >= 2:
            break
        page.wait_for_timeout(100)
    rows_seen = page.evaluate("window.__rows")
    # From the rollback's own answer on, every row is there: the old ones and the new one.
    assert rows_seen and all(n == rows_before + 1 for n in rows_seen), (rows_before, rows_seen)
    assert page.inner_text("#rollback-dialog").strip() == ""  # closed by the answer
    assert page.evaluate("window.__noReload") is True
    assert page.url == f"{live_server.url}/projects/hello/"
    row = page.inner_text("#deployment-5")
    assert "Rollback" in row and "to #2" in row and "Succeeded" in row
    weights = dict(memory_runtime.weights["hello"])
    page.screenshot(path=str(ARTIFACTS / "rollback-2-after.png"), full_page=True)

    viewer_page = log_in(browser, live_server, "vic", "vic-pw-42")
    viewer_page.goto(f"{live_server.url}/projects/hello/")
    assert viewer_page.inner_text("#live-number") == "#5"
    assert viewer_page.locator("text=Rollback").and_(viewer_page.locator("a")).count() == 0
    assert viewer_page.locator("a.button").count() == 0
    viewer_page.screenshot(path=str(ARTIFACTS / "rollback-3-viewer.png"), full_page=True)
    assert page.csp_violations == [] and viewer_page.csp_violations == []
    return weights

