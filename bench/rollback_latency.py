"""Rollback latency under load, warm and cold, through the real platform (issue 12).

Starts Switchback with `manage.py up` (Redis, or the embedded file broker with
--embedded), deploys --releases commits of examples/hello (busybox httpd) with a 1 s warm
window, so every earlier revision is retired: stopped, its containers kept.  Then, under a
fixed-rate load through HAProxy (wrk), it rolls back through the REST API:

- cold: to each of the kept revisions in turn, starting with the 10th-newest (the target's
  stopped containers are started and probed; the live revision serves meanwhile);
- warm: with the warm window raised to an hour, back and forth between two running revisions
  (the switch happens within the API request, see SWITCHBACK_ROLLBACK_IN_REQUEST).

Latency: API request -> first response served by the target revision, seen by a poller of
/version (4 threads, 20 ms apart).  Failed: wrk's non-2xx and socket errors, and the
poller's.  Prints a markdown table; results go in docs/benchmarks.md with date and machine.

    .venv/bin/python bench/rollback_latency.py                 # about 3 minutes
    .venv/bin/python bench/rollback_latency.py --embedded      # the embedded default broker

Needs what bench/zero_downtime.py needs (PostgreSQL, Redis unless --embedded, podman,
haproxy, wrk).  It drops and recreates the database `switchback_rl`, starts its own
redis-server on a free port, works in a temporary folder, and removes its containers and
images at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform as host
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import zero_downtime
from common import free_port
from zero_downtime import WRK_LUA, Platform, Poller, Wrk, log, make_repo, ms, percentile, reset_stores

# Our own database and Redis: other benches on this host use switchback_zd and Redis db 13.
zero_downtime.DB_NAME = "switchback_rl"


def rollback(plat: Platform, poller: Poller, slug: str, number: int, sha: str) -> dict:
    t_req = time.monotonic()
    created = plat.api("POST", f"/projects/{slug}/deployments/{number}/rollback/")
    t_api = time.monotonic()
    done = plat.wait_final(slug, created["number"], timeout=60, poll=0.02)
    seen = poller.first_served_by(sha, t_req, timeout=30)
    if done["state"] != "succeeded" or seen is None:
        raise RuntimeError(f"rollback to #{number}: {done['state']} {done['failure_reason']}")
    events = [e for e in plat.api("GET", f"/projects/{slug}/deployments/{done['number']}/")["events"]
              if e["kind"] == "phase"]
    phases = [e["message"] for e in events]
    # Where a rollback's time went: each phase's start, in ms after its "Queued".
    t_queued = dt.datetime.fromisoformat(events[0]["created_at"])

    def offset(e: dict) -> float:
        return (dt.datetime.fromisoformat(e["created_at"]) - t_queued).total_seconds() * 1000

    timeline = " ".join(f"{e['message'].split()[0].rstrip('.')}+{offset(e):.0f}" for e in events[1:])
    return {"to": number, "latency": seen.received - t_req, "api": t_api - t_req,
            "started": "Starting." in phases, "timeline": timeline}


def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="sb-rl-"))
    var = tmp / "var"
    var.mkdir()
    slug = f"rl{secrets.token_hex(3)}"
    shas = make_repo(tmp / "repo", args.releases, "httpd")
    reset_stores()
    port, apps_port = free_port(), free_port()
    plat = Platform(var, port, apps_port)
    redis_proc = None
    if args.embedded:
        plat.env.pop("REDIS_URL", None)
    else:
        redis_port = free_port()
        redis_proc = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        plat.env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    results: dict = {"cold": [], "warm": []}
    poller = wrk = None
    try:
        plat.start()
        plat.create_token()
        plat.api("POST", "/projects/", json={
            "name": "Rollback latency", "slug": slug, "repository": "bench/rollback-latency",
            "clone_url": f"file://{tmp / 'repo'}", "webhook_secret": secrets.token_hex(16),
            "probe_period_seconds": 0.1, "probe_timeout_seconds": 1.0, "ready_timeout_seconds": 60,
            "drain_seconds": 0.5, "keep_warm_seconds": 1, "watch_seconds": 0, "keep_images": 10})
        numbers = []
        for sha in shas:
            created = plat.api("POST", f"/projects/{slug}/deployments/", json={"sha": sha})
            d = plat.wait_final(slug, created["number"], timeout=180)
            if d["state"] != "succeeded":
                raise RuntimeError(f"deploy #{d['number']}: {d['state']} {d['failure_reason']}")
            numbers.append(d["number"])
            log(f"#{d['number']} live")
        time.sleep(3)  # the 1 s warm window passes: earlier revisions are retired (stopped)
        host_header = f"{slug}.localhost"
        poller = Poller(host_header, apps_port).start()
        wrk = Wrk(f"http://127.0.0.1:{apps_port}/", host_header, rate=args.rate, threads=2, connections=8,
                  seconds=1800, script=_script(tmp))
        time.sleep(2)
        sha_of = dict(zip(numbers, shas, strict=True))
        kept = numbers[-11:-1]  # the 10 revisions before the live one, oldest (10th-newest) first
        for i in range(args.cold):
            target = kept[(i * 3) % len(kept)]  # 10th-newest first, then spread over the kept ones
            r = rollback(plat, poller, slug, target, sha_of[target])
            results["cold"].append(r)
            log(f"cold rollback to #{target}: {ms(r['latency'])} (API {ms(r['api'])}, started: {r['started']}; "
                f"{r['timeline']})")
            time.sleep(args.settle)  # the previous live revision retires (stopped) before the next one
        plat.api("PATCH", f"/projects/{slug}/", json={"keep_warm_seconds": 3600})
        a, b = kept[-1], kept[-2]
        rollback(plat, poller, slug, a, sha_of[a])  # both now run: a live, the other warm
        rollback(plat, poller, slug, b, sha_of[b])
        for i in range(args.warm):
            target = (a, b)[i % 2]
            r = rollback(plat, poller, slug, target, sha_of[target])
            results["warm"].append(r)
            log(f"warm rollback to #{target}: {ms(r['latency'])} (API {ms(r['api'])}, started: {r['started']})")
            time.sleep(0.5)
        time.sleep(1)
        results["load"] = wrk.stop()
        wrk = None
        poller.stop()
        results["poller_failed"] = sum(1 for s in poller.samples if s.status != 200)
        results["poller_count"] = len(poller.samples)
    finally:
        if poller is not None:
            poller.stop()
        if wrk is not None:
            wrk.stop()
        plat.stop()
        zero_downtime.platform_leftovers_remove(plat, slug)
        shutil.rmtree(tmp, ignore_errors=True)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
    return results


def _script(tmp: Path) -> Path:
    path = tmp / "rate.lua"
    path.write_text(WRK_LUA)
    return path


def report(r: dict, args) -> None:
    load = r["load"]
    print(f"\n## Rollback latency ({'embedded file broker' if args.embedded else 'Redis'}), "
          f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {host.node()} ({host.processor() or host.machine()}, "
          f"{Path('/proc/loadavg').read_text().split()[0]} load)\n")
    print("| rollbacks | n | p50 | p99 | max | all started (cold) / none (warm) |")
    print("|---|---|---|---|---|---|")
    for kind in ("cold", "warm"):
        lat = [x["latency"] for x in r[kind]]
        started = [x["started"] for x in r[kind]]
        ok = all(started) if kind == "cold" else not any(started)
        print(f"| {kind} | {len(lat)} | {ms(percentile(lat, 50))} | {ms(percentile(lat, 99))} | {ms(max(lat))} | "
              f"{'yes' if ok else 'NO'} |")
    print(f"\nLoad: {load['requests']} requests at {load['rate']:.0f}/s, non-2xx {load['non2xx']}, socket errors "
          f"{load['socket_errors']}; poller: {r['poller_count']} requests, {r['poller_failed']} failed.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedded", action="store_true", help="no REDIS_URL: the embedded file broker")
    parser.add_argument("--releases", type=int, default=11)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--database", default=zero_downtime.DB_NAME,
                        help=f"PostgreSQL database, dropped and created (default {zero_downtime.DB_NAME})")
    args = parser.parse_args()
    zero_downtime.DB_NAME = args.database  # engineers sharing a machine pick their own
    requests.packages.urllib3.disable_warnings()
    results = run(args)
    report(results, args)
    failed = results["load"]["non2xx"] + results["load"]["socket_errors"] + results["poller_failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
