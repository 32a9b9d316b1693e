"""Scheduled promotion accuracy through the real platform (issue 13).

Starts Switchback with `manage.py up` (its own redis-server, PostgreSQL, Podman, HAProxy),
deploys examples/hello once, then gives the project a scheduled strategy far in the future
so each new deployment is built, started and warmed, then waits.  For each round it
deploys the next commit, waits until the deployment is ready and waiting for its time,
sets the time (through the REST API, as a wall time in Europe/Berlin) to a whole second
`--lead` seconds ahead, and measures against that scheduled instant:

- fired: when the engine saw the time had come (the schedule's fired_at);
- switched: when the deployment went live (live_at, set as HAProxy's weights change);
- served: the first response from the new revision through HAProxy, seen by a poller of
  /version (4 threads, 20 ms apart).

Target: served - scheduled < 1 s.  Prints a markdown table; results go in
docs/benchmarks.md with the date and the machine.

    .venv/bin/python bench/scheduled_promotion.py               # about 2-3 minutes
    .venv/bin/python bench/scheduled_promotion.py --rounds 10 --lead 5

Needs PostgreSQL (trust) on 127.0.0.1, redis-server, podman and haproxy.  It drops and
recreates the database `switchback_sp`, works in a temporary folder, and removes its
containers and images at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform as host
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import zero_downtime
from common import free_port
from zero_downtime import Platform, Poller, log, make_repo, reset_stores

zero_downtime.DB_NAME = "switchback_sp"
zero_downtime.REDIS_URL = "redis://127.0.0.1:6379/5"  # only flushed by reset_stores; the platform gets its own
BERLIN = ZoneInfo("Europe/Berlin")


def wall(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value).timestamp() if value else None


def wait_for(plat: Platform, slug: str, number: int, kind: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = plat.api("GET", f"/projects/{slug}/deployments/{number}/")
        if d["state"] == "switching" and (d.get("waiting") or {}).get("kind") == kind:
            return d
        if d["state"] in zero_downtime.FINAL:
            raise RuntimeError(f"#{number} finished ({d['state']}: {d['failure_reason']}) before it waited")
        time.sleep(0.2)
    raise RuntimeError(f"#{number} was not waiting for its {kind} within {timeout}s")


def round_(plat: Platform, poller: Poller, slug: str, sha: str, lead: float, mono_to_wall: float) -> dict:
    created = plat.api("POST", f"/projects/{slug}/deployments/", json={"sha": sha})
    number = created["number"]
    wait_for(plat, slug, number, "schedule")
    at_wall = math.ceil(time.time()) + lead  # a whole second: the API takes HH:MM:SS
    local = dt.datetime.fromtimestamp(at_wall, BERLIN).strftime("%Y-%m-%dT%H:%M:%S")
    d = plat.api("PUT", f"/projects/{slug}/deployments/{number}/schedule/",
                 json={"at": local, "tz": "Europe/Berlin"})
    scheduled = wall(d["schedule"]["at"])
    assert abs(scheduled - at_wall) < 1e-6, (scheduled, at_wall)
    after = time.monotonic()
    seen = poller.first_served_by(sha, after, timeout=lead + 30)
    done = plat.wait_final(slug, number, timeout=60, poll=0.05)
    if done["state"] != "succeeded" or seen is None:
        raise RuntimeError(f"#{number}: {done['state']} {done['failure_reason']}")
    detail = plat.api("GET", f"/projects/{slug}/deployments/{number}/")
    served = seen.received + mono_to_wall
    return {"number": number, "fired": wall(detail["schedule"]["fired_at"]) - scheduled,
            "switched": wall(detail["live_at"]) - scheduled, "served": served - scheduled}


def run(args) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="sb-sp-"))
    var = tmp / "var"
    var.mkdir()
    slug = f"sp{secrets.token_hex(3)}"
    shas = make_repo(tmp / "repo", args.rounds + 1, "httpd")
    reset_stores()
    plat = Platform(var, free_port(), free_port())
    redis_port = free_port()
    redis_proc = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    plat.env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    results: list[dict] = []
    poller = None
    try:
        plat.start()
        plat.create_token()
        plat.api("POST", "/projects/", json={
            "name": "Scheduled promotion", "slug": slug, "repository": "bench/scheduled",
            "clone_url": f"file://{tmp / 'repo'}", "webhook_secret": secrets.token_hex(16),
            "probe_period_seconds": 0.1, "probe_timeout_seconds": 1.0, "ready_timeout_seconds": 60,
            "drain_seconds": 0.5, "keep_warm_seconds": 5, "watch_seconds": 0, "keep_images": 2})
        first = plat.api("POST", f"/projects/{slug}/deployments/", json={"sha": shas[0]})
        if plat.wait_final(slug, first["number"], timeout=240)["state"] != "succeeded":
            raise RuntimeError("the first deployment failed")
        far = dt.datetime.now(BERLIN) + dt.timedelta(days=30)
        plat.api("PATCH", f"/projects/{slug}/", json={"strategy": {"at": far.strftime("%Y-%m-%dT%H:%M"),
                                                                   "tz": "Europe/Berlin"}})
        poller = Poller(f"{slug}.localhost", plat.apps_port).start()
        mono_to_wall = time.time() - time.monotonic()
        for sha in shas[1:]:
            r = round_(plat, poller, slug, sha, args.lead, mono_to_wall)
            results.append(r)
            log(f"#{r['number']}: fired +{r['fired'] * 1000:.1f} ms, switched +{r['switched'] * 1000:.1f} ms, "
                f"served +{r['served'] * 1000:.1f} ms after the scheduled time")
    finally:
        if poller is not None:
            poller.stop()
        plat.stop()
        zero_downtime.platform_leftovers_remove(plat, slug)
        shutil.rmtree(tmp, ignore_errors=True)
        redis_proc.terminate()
        redis_proc.wait(10)
    return results


def report(results: list[dict], args) -> None:
    print(f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {host.node()} ({host.machine()}), "
          f"{len(results)} rounds, lead {args.lead:g} s, wall times in Europe/Berlin\n")
    print("| measured against the scheduled time | min | median | max | target |")
    print("|---|---|---|---|---|")
    for key, label in (("fired", "schedule fired (engine saw the time)"),
                       ("switched", "switched (live_at, HAProxy weights set)"),
                       ("served", "first response from the new revision")):
        values = [r[key] * 1000 for r in results]
        target = "< 1000 ms" if key == "served" else ""
        print(f"| {label} | {min(values):.1f} ms | {statistics.median(values):.1f} ms | {max(values):.1f} ms "
              f"| {target} |")
    early = [r for r in results if r["served"] < 0]
    print(f"\nserved before the scheduled time: {len(early)} (must be 0); "
          f"over 1 s late: {sum(1 for r in results if r['served'] >= 1)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lead", type=float, default=4.0, help="seconds from setting the time to the time")
    args = parser.parse_args()
    results = run(args)
    report(results, args)
    return 0 if results and all(0 <= r["served"] < 1 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
