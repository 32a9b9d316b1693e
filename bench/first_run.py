"""Time from `scripts/run` to the demo's second revision live (issue 15), install already done.

Each round runs `scripts/run --port P --apps-port Q` with a fresh SWITCHBACK_VAR_DIR (the
first start of a platform on a machine where the install has run once: the virtualenv and
system packages are there, the database and the demo are not), on the embedded default
(no DATABASE_URL, no REDIS_URL).  `up --demo` prints the figure itself ("Demo ready: ... N s
after the start"); this script collects it and the start-up steps, stops the platform and
the apps, and prints a table.

    python bench/first_run.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300
STEP = re.compile(r"^\s+\S+ (?P<name>[a-zA-Z ]+?)\s+(?P<seconds>[\d.]+) s")
READY = re.compile(r"Demo ready: .* went live, (?P<seconds>[\d.]+) s after the start")


def one_round() -> dict:
    var = Path(tempfile.mkdtemp(prefix="sb-first-run-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DOCKER_HOST")}
    env.update(SWITCHBACK_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="config.settings.local",
               SWITCHBACK_ALLOWED_SOURCE_ROOTS="", PYTHONIOENCODING="utf-8")
    port, apps_port = free_port(), free_port()
    proc = subprocess.Popen(["scripts/run", "--port", str(port), "--apps-port", str(apps_port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    result: dict = {"steps": {}, "ready": None, "up": None}
    deadline = time.monotonic() + TIMEOUT
    try:
        for line in proc.stdout:
            if match := STEP.match(line):
                result["steps"][match["name"].strip()] = float(match["seconds"])
            if line.startswith("Switchback is up ("):
                result["up"] = float(line.split("(")[1].split(" s")[0])
            if match := READY.search(line):
                result["ready"] = float(match["seconds"])
                break
            if time.monotonic() > deadline:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run([str(ROOT / ".venv/bin/python"), "manage.py", "apps_stop"], cwd=ROOT, env=env,
                       capture_output=True, timeout=180)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = [one_round() for _ in range(args.rounds)]
    names = sorted({name for row in rows for name in row["steps"]})
    print(f"{'round':>5}  {'demo #2 live (s)':>16}  {'block shown (s)':>15}  " + "  ".join(f"{n:>16}" for n in names))
    for index, row in enumerate(rows, 1):
        ready = f"{row['ready']:.1f}" if row["ready"] is not None else "timeout"
        up = f"{row['up']:.1f}" if row["up"] is not None else "-"
        print(f"{index:>5}  {ready:>16}  {up:>15}  "
              + "  ".join(f"{row['steps'].get(n, float('nan')):>16.1f}" for n in names))


if __name__ == "__main__":
    main()
