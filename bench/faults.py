"""The fault suite as a benchmark: what an app under load sees when the platform fails.

Starts Switchback like a user would (`manage.py up`, PostgreSQL and a private
redis-server, a temporary var folder), creates a project of examples/hello and keeps it under constant, bounded load
through HAProxy (loopback only), then injects, one after the other:

  kill -9 of the Celery worker's master while a rollout is in flight; kill -9 of gunicorn's
  master and of beat; Redis stopped (20 s) while signed merges arrive; `up` stopped with
  SIGTERM and started again; HAProxy killed.

For each it prints the app requests that failed and the time until PostgreSQL, HAProxy's
routes and the containers agree again.  Targets: 0 failed requests for every fault except
HAProxy dying (under 1 s of errors).

    .venv/bin/python bench/faults.py                 # about 3 minutes
    .venv/bin/python bench/faults.py --rate 80 --redis-seconds 20

Needs PostgreSQL (trust) on 127.0.0.1, podman, haproxy, redis-server and git.  It creates
and drops the database `switchback_faults`, and removes its app containers at the end
(`manage.py apps_stop`).  Copy the table with the date and machine into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultkit import (  # noqa: E402 - bench/faultkit.py, beside this script
    Load,
    Platform,
    fault_haproxy_killed,
    fault_host_rebooted,
    fault_redis_stopped,
    fault_up_restarted,
    fault_web_and_beat_killed,
    fault_worker_killed,
    missing_tools,
    wait_until,
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="app requests per second (default 50)")
    parser.add_argument("--redis-seconds", type=float, default=20.0, help="how long Redis stays down (default 20)")
    parser.add_argument("--database", default="switchback_faults")
    args = parser.parse_args()
    if missing := missing_tools():
        print(f"missing: {', '.join(missing)} (run scripts/install-system-deps.sh)", file=sys.stderr)
        return 2
    # Short path: HAProxy's and supervisord's UNIX sockets live under it.
    work = Path(tempfile.mkdtemp(prefix="sbf-"))
    p = Platform(work, database=args.database)
    results = []
    try:
        p.create()
        log(f"starting manage.py up in {work}")
        p.start()
        p.app_create()
        wait_until(lambda: p.app()[0] == 200 and not p.agree(), 240, "the app to serve", 0.5)
        with Load(p.apps_port, host=p.host, rate=args.rate) as load:
            time.sleep(2)  # a steady state first
            for fault in (fault_worker_killed, fault_web_and_beat_killed,
                          lambda p, load: fault_redis_stopped(p, load, seconds=args.redis_seconds),
                          fault_up_restarted, fault_haproxy_killed, fault_host_rebooted):
                result = fault(p, load)
                log(f"{result.fault}: {result.failed} failed of {result.requests}; "
                    f"converged in {result.converge_seconds:.1f} s; {result.note}")
                results.append(result)
                time.sleep(2)
    finally:
        p.destroy()
    report(results, args)
    return 0


def report(results, args) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"\n### Faults under load ({dt.date.today().isoformat()}, {os.cpu_count()} cores {cpu}, "
          f"{platform.system()} {platform.release()}; {args.rate:.0f} req/s on the sample app)\n")
    print("| fault | app requests | failed | errors for | converged in | notes |")
    print("|---|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r.fault} | {r.requests} | {r.failed} | {r.error_seconds:.2f} s | {r.converge_seconds:.1f} s "
              f"| {r.note} |")


if __name__ == "__main__":
    sys.exit(main())
