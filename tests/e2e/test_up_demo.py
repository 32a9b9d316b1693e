"""The README's run command: `manage.py up --demo` on the embedded default brings the
platform up with HAProxy and the container engine, deploys two revisions of the sample app
(so Rollback is offered on #1 at once) and serves it by Host header.  The console is calm:
the URL block and deployment milestones, no Celery banner.  SIGTERM stops the platform and
the app keeps serving; `manage.py apps_stop` then stops the app and HAProxy, and nothing is
left behind."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.single_host_fixtures import free_port
from tests.test_embedded_default import processes_with_env

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]
ROOT = Path(__file__).resolve().parents[2]


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": f"hello.localhost:{port}"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError as exc:
        return 0, str(exc)
    finally:
        conn.close()


def test_up_demo_deploys_the_sample_app_that_outlives_the_platform(engine, tmp_path_factory):
    var = tmp_path_factory.mktemp("up")  # short: UNIX socket paths live under it
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DOCKER_HOST")}
    # No allowed source roots from the test settings: `up --demo` itself allows its demo folder.
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", SWITCHBACK_VAR_DIR=str(var),
               SWITCHBACK_ALLOWED_SOURCE_ROOTS="")
    port, apps_port = free_port(), free_port()
    log = open(var / "up.log", "w")
    proc = subprocess.Popen([sys.executable, "manage.py", "up", "--demo", "--port", str(port),
                             "--apps-port", str(apps_port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        status, body = 0, ""
        while time.monotonic() < deadline and proc.poll() is None:
            status, body = get(apps_port, "/version")
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, (body, (var / "up.log").read_text()[-3000:])
        shas = subprocess.run(["git", "-C", str(var / "demo" / "hello"), "rev-list", "--reverse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.split()
        assert len(shas) == 2  # two commits: two revisions
        while time.monotonic() < deadline and "Demo ready" not in (var / "up.log").read_text():
            time.sleep(0.5)
        console = (var / "up.log").read_text()
        assert get(apps_port, "/version")[1].strip() == shas[1], console[-3000:]
        assert get(apps_port, "/")[1].startswith("hello from revision 2")
        # The block: where everything is, the password once, what to try first.
        for line in (f"Dashboard   http://127.0.0.1:{port}/", "Login       admin / ",
                     f"API docs    http://127.0.0.1:{port}/api/docs/",
                     f"Demo app    http://hello.localhost:{apps_port}/", f"Demo repo   {var / 'demo' / 'hello'}",
                     "click Rollback on #1", f"Logs        {var / 'log'}/"):
            assert line in console, (line, console)
        # Deployments live in turn, and nothing else from the children on the console.
        first, second = console.index("hello #1 live: " + shas[0][:7]), console.index("hello #2 live: " + shas[1][:7])
        assert first < second < console.index("Demo ready: #1 and #2 went live")
        for noise in ("celery@", "[tasks]", "SecurityWarning", "spawned:", "outbox_sweep", "GET /readyz"):
            assert noise not in console, (noise, console)
        assert "celery@" in (var / "log" / "worker.log").read_text()  # the banner went to the log file
        token = subprocess.run([sys.executable, "manage.py", "token_create", "admin"], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        targets = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/api/projects/hello/rollback-targets/",
            headers={"Authorization": f"Token {token}"}), timeout=10).read())
        offered = {t["number"]: t for t in (targets["results"] if isinstance(targets, dict) else targets)}
        assert 1 in offered and offered[1]["state"] == "warm", targets
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    assert "Stopped." in (var / "up.log").read_text()
    # The platform stopped; the app did not (HAProxy and the container serve on their own).
    assert get(apps_port, "/")[1].startswith("hello from revision 2")
    stop = subprocess.run([sys.executable, "manage.py", "apps_stop"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stderr
    assert "stopped HAProxy" in stop.stdout
    assert get(apps_port, "/")[0] == 0  # nothing listens any more
    deadline = time.monotonic() + 20  # the engine service apps_stop started is stopping
    while (left := processes_with_env(f"SWITCHBACK_VAR_DIR={var}")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], [_cmdline(pid) for pid in left]
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_mentions(p, str(var))]
    removed = [line.split()[-1] for line in stop.stdout.splitlines() if line.startswith("removed container ")]
    assert len(removed) == 2 and sorted(name.rsplit("-hello-", 1)[1] for name in removed) == ["1-0", "2-0"]
    for name in removed:
        assert engine.client.containers.list(all=True, filters={"name": name}) == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"


def _cmdline_mentions(proc_dir: Path, text: str) -> bool:
    """haproxy and podman run with paths under the var dir on their command line."""
    try:
        return text.encode() in (proc_dir / "cmdline").read_bytes()
    except OSError:
        return False
