"""How soon an open History page shows a deployment made through the API (issue 15).

Starts `manage.py up --no-runtime` on the embedded default (its own var dir and ports),
opens the project page in Chromium (Playwright, Debian's /usr/bin/chromium), then, round
after round, POSTs a deployment through the API and waits (real clock) for its row to
appear, without reloading the page.  The page learns of it from the 500 ms watcher
(`/projects/<slug>/changes/`: 204 while nothing changed), not from the 5 s refresh.
Also times the watcher's own request (an unchanged answer) from the test side.

    python bench/history_watch.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, percentile_nearest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="sb-history-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(SWITCHBACK_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="config.settings.local",
               SWITCHBACK_ALLOWED_SOURCE_ROOTS=str(var))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "manage.py", "up", "--no-runtime", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        token = subprocess.run([sys.executable, "manage.py", "token_create", "admin"], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        api = {"Authorization": f"Token {token}"}
        created = requests.post(base + "/api/projects/", headers=api, timeout=10, json={
            "slug": "hello", "clone_url": f"file://{var}/nothing", "webhook_secret": "x"})
        assert created.status_code == 201, created.text
        password = (var / "admin-password").read_text().strip()
        from playwright.sync_api import sync_playwright

        latencies, after_commit, watch_ms = [], [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page()
            page.goto(base + "/login/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")
            page.goto(base + "/projects/hello/")
            session = requests.Session()
            for cookie in page.context.cookies():
                session.cookies.set(cookie["name"], cookie["value"])
            for n in range(1, args.rounds + 1):
                page.wait_for_timeout(300 + (n * 137) % 500)  # land anywhere in the watcher's period
                started = time.monotonic()
                made = requests.post(base + "/api/projects/hello/deployments/", headers=api, timeout=10,
                                     json={"sha": f"{n:040x}"})
                assert made.status_code in (201, 202), made.text
                committed = time.monotonic()  # the row exists from here on
                page.wait_for_selector(f"#deployment-{n}", timeout=20_000)
                latencies.append(time.monotonic() - started)
                after_commit.append(time.monotonic() - committed)
                since = page.get_attribute("#history-watch", "hx-get").split("since=")[1]
                t = time.monotonic()
                session.get(f"{base}/projects/hello/changes/?since={since}", headers={"HX-Request": "true"})
                watch_ms.append((time.monotonic() - t) * 1000)
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    print(f"{'what':<44} {'n':>3} {'p50':>8} {'p90':>8} {'max':>8}")
    for name, values, unit in (("API deploy sent -> row on the History (s)", latencies, 1),
                               ("API answered (row saved) -> row shown (s)", after_commit, 1),
                               ("watcher request, unchanged (ms)", watch_ms, 1)):
        print(f"{name:<44} {len(values):>3} {percentile_nearest(values, 50) * unit:>8.2f} "
              f"{percentile_nearest(values, 90) * unit:>8.2f} {max(values) * unit:>8.2f}")


if __name__ == "__main__":
    main()
