"""Two simultaneous rollbacks to different revisions, under load, round after round.

Starts Switchback like a user would (`manage.py up`, PostgreSQL, its own redis-server on a
free port), deploys three releases of examples/hello (all three stay warm), then, for each
round, puts a fixed-rate load through HAProxy (wrk) and sends two rollback requests at the
same instant (a barrier releases both threads), each to a different revision that is not
live.  A round passes when no request failed and the project ends on the later request
(the higher deployment number): the database's live deployment and what HAProxy serves.

    .venv/bin/python bench/concurrent_rollbacks.py                   # 20 rounds at 300 req/s
    .venv/bin/python bench/concurrent_rollbacks.py --rounds 5 --rate 300

Needs what bench/zero_downtime.py needs (podman, haproxy, wrk, PostgreSQL with trust).
Drops and recreates the database `switchback_cr`, works in a temporary folder, touches
only loopback, stops the platform at the end and removes this run's containers.
Prints a markdown table; copy it with the date and machine into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform as host_platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import zero_downtime as zd  # bench/zero_downtime.py: the platform, wrk at a fixed rate, the repo
from common import free_port

ROOT = Path(__file__).resolve().parents[1]


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """A private Redis: a shared one lets another instance's workers take this run's tasks."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        with contextlib.suppress(OSError):
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def served_sha(apps_url: str, host: str) -> str:
    return requests.get(apps_url + "version", headers={"Host": host}, timeout=5).text.strip()


def run(args) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="sb-cr-"))
    var = tmp / "var"
    var.mkdir()
    redis_proc, redis_url = start_redis(tmp)
    zd.DB_NAME, zd.REDIS_URL = "switchback_cr", redis_url
    slug = f"cr{secrets.token_hex(3)}"
    shas = zd.make_repo(tmp / "repo", 3, "httpd")
    zd.reset_stores()
    port, apps_port = free_port(), free_port()
    plat = zd.Platform(var, port, apps_port)
    script = tmp / "rate.lua"
    script.write_text(zd.WRK_LUA)
    apps_url = f"http://127.0.0.1:{apps_port}/"
    host = f"{slug}.localhost"
    rounds: list[dict] = []
    started_all = time.monotonic()
    try:
        zd.log(f"starting the platform (API :{port}, apps :{apps_port}, redis {redis_url})")
        plat.start()
        plat.create_token()
        plat.api("POST", "/projects/", json={
            "name": "Concurrent rollbacks bench", "slug": slug, "repository": "bench/concurrent-rollbacks",
            "clone_url": f"file://{tmp / 'repo'}", "webhook_secret": secrets.token_hex(16),
            "replicas": args.replicas, "probe_period_seconds": 0.2, "probe_timeout_seconds": 1.0,
            "ready_timeout_seconds": 90, "drain_seconds": 2.0, "keep_warm_seconds": 3600,
            "watch_seconds": 0, "keep_images": 50,
        })
        sha_of: dict[int, str] = {}
        for sha in shas:
            created = plat.api("POST", f"/projects/{slug}/deployments/", json={"sha": sha})
            d = plat.wait_final(slug, created["number"], timeout=240)
            if d["state"] != "succeeded":
                raise RuntimeError(f"deploy #{d['number']} {d['state']}: {d['failure_reason']}")
            sha_of[d["number"]] = sha
            zd.log(f"deploy #{d['number']} live ({sha[:7]})")
        originals = sorted(sha_of)  # the three deployments that built a revision
        live = originals[-1]
        for index in range(args.rounds):
            targets = [n for n in originals if n != live]
            if index % 2:
                targets.reverse()
            wrk = zd.Wrk(apps_url, host, rate=args.rate, threads=2, connections=args.connections,
                         seconds=int(args.warmup + args.settle + 30), script=script)
            time.sleep(args.warmup)
            barrier = threading.Barrier(2)
            answers: dict[int, dict] = {}

            def rollback(target: int, answers=answers, barrier=barrier) -> None:
                barrier.wait()
                answers[target] = plat.api("POST", f"/projects/{slug}/deployments/{target}/rollback/")

            threads = [threading.Thread(target=rollback, args=(t,)) for t in targets]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            finals = {t: plat.wait_final(slug, answers[t]["number"]) for t in targets}
            done = time.monotonic() - t0
            time.sleep(args.settle)
            load = wrk.stop()
            later_target = max(targets, key=lambda t: answers[t]["number"])
            later = answers[later_target]["number"]
            project = plat.api("GET", f"/projects/{slug}/")
            served = served_sha(apps_url, host)
            failed = load["non2xx"] + load["socket_errors"]
            row = {
                "round": index + 1,
                "requests": load["requests"],
                "failed": failed,
                "statuses": load["statuses"],
                "to": targets,
                "numbers": [answers[t]["number"] for t in targets],
                "states": [finals[t]["state"] for t in targets],
                "later": later,
                "live": project["live_deployment"],
                "end_ok": project["live_deployment"] == later and served == sha_of[later_target],
                "seconds": done,
            }
            rounds.append(row)
            live = later_target if row["end_ok"] else live
            zd.log(f"round {row['round']}: rollbacks #{row['numbers'][0]}->#{targets[0]} and "
                   f"#{row['numbers'][1]}->#{targets[1]}: {row['states']}, live #{row['live']} "
                   f"(later #{later}), {failed} failed of {load['requests']}")
    finally:
        zd.log("stopping the platform (SIGTERM)")
        plat.stop()
        with contextlib.suppress(Exception):
            # The apps and HAProxy outlive `up` (issue 11); names carry the installation id.
            zd.platform_leftovers_remove(plat, slug)
        redis_proc.terminate()
        redis_proc.wait(10)
    report(rounds, args, time.monotonic() - started_all)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if rounds and all(r["failed"] == 0 and r["end_ok"] for r in rounds) else 1


def report(rounds: list[dict], args, elapsed: float) -> None:
    mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    print()
    print(f"Concurrent rollbacks: {len(rounds)} rounds of 2 simultaneous rollbacks to different revisions, "
          f"{args.rate} req/s through HAProxy, {args.replicas} replicas per revision. "
          f"{host_platform.node()}: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} CPUs, "
          f"{mem} RAM, kernel {host_platform.release()}; {elapsed:.0f} s in all.")
    print()
    print("| round | rollbacks (deployment -> target) | states | live after | later request | requests | failed |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in rounds:
        pairs = ", ".join(f"#{n} -> #{t}" for n, t in zip(r["numbers"], r["to"], strict=True))
        print(f"| {r['round']} | {pairs} | {' / '.join(r['states'])} | #{r['live']} | #{r['later']}"
              f"{'' if r['end_ok'] else ' (MISMATCH)'} | {r['requests']:,} | {r['failed']} |")
    total = sum(r["requests"] for r in rounds)
    failed = sum(r["failed"] for r in rounds)
    ok = sum(r["end_ok"] for r in rounds)
    print()
    print(f"Total: {failed} failed of {total:,} requests; end state equals the later request in "
          f"{ok}/{len(rounds)} rounds.")
    print("SBJSON " + json.dumps({"rounds": rounds, "failed": failed, "requests": total, "end_ok": ok}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=300, help="requests per second (default 300)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds of load before each pair")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds of load after both finished")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, repo)")
    args = parser.parse_args()
    for tool in ("wrk", "podman", "haproxy", "git", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: run scripts/install-system-deps.sh")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
