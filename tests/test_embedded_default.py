"""Smoke test of the embedded default: no DATABASE_URL, no REDIS_URL, `manage.py up`.

SQLite and the file-based broker, gunicorn, a Celery worker and beat, started and
stopped by the one command a new user runs.  A signed webhook is accepted and the worker
picks the deployment up.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.single_host_fixtures import free_port
from webhooks.github import sign

ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def processes_with_env(marker: str) -> list[int]:
    """Every live process whose environment carries `marker` (no process left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() + b"\0" in (entry / "environ").read_bytes() + b"\0":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture
def embedded(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", SWITCHBACK_VAR_DIR=str(tmp_path),
               OUTBOX_STALE_SECONDS="5")
    port = free_port()
    log = open(tmp_path / "up.log", "w")
    proc = subprocess.Popen([sys.executable, "manage.py", "up", "--no-runtime", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(base + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, 60, "the embedded platform to become ready")
        yield base, env, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
        assert "Stopped." in (tmp_path / "up.log").read_text()
        assert processes_with_env(f"SWITCHBACK_VAR_DIR={tmp_path}") == []


def test_embedded_default_runs_and_takes_a_webhook(embedded):
    base, env, var = embedded
    assert (var / "switchback.sqlite3").exists()
    password = (var / "admin-password").read_text().strip()
    session = requests.Session()
    login_page = session.get(base + "/login/")
    assert login_page.status_code == 200
    # DEBUG is off here too (issue 9): errors answer as in production, static files still load.
    missing = requests.get(base + "/api/no/such/path/")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json", missing.text[:200]
    assert requests.get(base + "/static/vendor/htmx.min.js").status_code == 200
    assert "Content-Security-Policy" in login_page.headers
    response = session.post(base + "/login/", data={
        "username": "admin", "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"],
    }, headers={"Referer": base + "/login/"})
    assert response.status_code == 200 and "Projects" in response.text

    token = subprocess.run([sys.executable, "manage.py", "token_create", "admin"], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    api = {"Authorization": f"Token {token}"}
    created = requests.post(base + "/api/projects/", headers=api, json={
        "slug": "hello", "repository": "octo/hello", "webhook_secret": "s3cret",
        "clone_url": f"file://{var}/nonexistent/repo.git"})
    assert created.status_code == 201, created.text

    body = json.dumps({"ref": "refs/heads/main", "after": "c" * 40,
                       "repository": {"full_name": "octo/hello"}}).encode()
    # The project's own webhook URL (its path; PUBLIC_URL is not this test's port).
    hook_path = "/webhooks/" + created.json()["webhook_url"].split("/webhooks/", 1)[1]
    hook = requests.post(base + hook_path, data=body, headers={
        "content-type": "application/json", "x-github-event": "push", "x-github-delivery": "smoke-1",
        "x-hub-signature-256": sign(secret="s3cret", body=body)})
    assert hook.status_code == 202, hook.text
    url = base + hook.json()["url"]

    def picked_up():
        detail = requests.get(url, headers=api).json()
        return detail if detail["state"] != "queued" else None

    detail = wait_for(picked_up, 60, "the worker to pick the deployment up")
    # The worker ran the rollout: the repository does not exist, so it fails with a reason.
    assert len(detail["events"]) > 1
