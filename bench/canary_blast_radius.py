"""Blast radius of a bad canary: how much traffic fails before the metric gate rolls it back.

Real Podman, real HAProxy (the gate reads its per-server counters through the Runtime
API), the real engine, PostgreSQL.  The engine is driven in this process, as one worker
would (no broker hop between steps).  A stable revision of examples/hello serves a
closed-loop HTTP load; each round deploys a bad revision (FAIL_PERCENT=20: a fifth of its
answers are 500s) with a 10% first step held for minutes and the default gate (the
dashboard's checkbox: error rate over 2% or 5x the stable's; checked every 2 s; two failed
checks in a row act; at least 20 requests to judge).  Per round it reports:

- failed share of ALL requests, over three spans: the canary's exposure (its weights set
  to the rollback: at most 10% x 20% = 2% by construction), from the deploy request to
  the rollback (build and warm-up included, the stable serving everything), and a fixed
  60 s window starting at the deploy request;
- seconds from the first failing check (its timeline event) to HAProxy's weights fully
  back on the stable revision (a poller reads `show stat` every 10 ms).

    .venv/bin/python bench/canary_blast_radius.py               # 5 rounds, 8 client threads
    .venv/bin/python bench/canary_blast_radius.py --rounds 3 --threads 4

Drops and recreates the database `switchback_gates_bench`, uses Redis db 7 as a broker
nobody consumes (flushed at the end), works in a temporary folder, touches only loopback,
and removes this run's containers, images and HAProxy at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import os
import platform as host_platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FAILING = "failing on purpose"


class Load:
    """Closed-loop GETs through HAProxy; every answer kept with its wall-clock time."""

    def __init__(self, port: int, host: str, threads: int):
        self.port, self.host = port, host
        self.samples: list[tuple[float, int, str]] = []  # (time, status, body)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self) -> None:
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/version", headers={"Host": self.host})
                resp = conn.getresponse()
                sample = (time.time(), resp.status, resp.read().decode().strip())
            except Exception as exc:  # noqa: BLE001 - a failed request is what we count
                sample = (time.time(), 0, repr(exc))
            finally:
                conn.close()
            with self.lock:
                self.samples.append(sample)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def between(self, start: float, end: float) -> tuple[int, int]:
        with self.lock:
            chosen = [s for s in self.samples if start <= s[0] <= end]
        return len(chosen), sum(1 for s in chosen if not 200 <= s[1] < 300)


class WeightPoller:
    """Reads HAProxy's live weights every 10 ms; remembers when the canary's reached 0."""

    def __init__(self, runtime, slug: str):
        self.runtime, self.slug = runtime, slug
        self.canary: str | None = None
        self.back_at: float | None = None
        self.seen = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.01):
            canary = self.canary
            if canary is None or self.back_at is not None:
                continue
            weights = self.runtime.traffic(self.slug)
            if weights.get(canary, 0) > 0:
                self.seen = True
            elif self.seen:
                self.back_at = time.time()

    def watch(self, canary: str) -> None:
        self.canary, self.back_at, self.seen = canary, None, False


def recreate_database(url: str) -> None:
    import psycopg

    name, admin = url.rsplit("/", 1)[1], url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def git(path: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    return subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(repo: Path, note: str) -> str:
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(ROOT / "examples" / "hello", repo, dirs_exist_ok=True)
    (repo / "NOTE").write_text(note)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", note)
    return git(repo, "rev-parse", "HEAD")


def drive(engine, deployment, deadline: float = 300.0):
    from deployments.errors import TransientError

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            delay = engine.rollout_step(deployment_id=deployment.pk)
        except TransientError:
            delay = 0.2
        if delay is None:
            break
        time.sleep(min(delay, 0.05))
    deployment.refresh_from_db()
    return deployment


def run(args, stack: contextlib.ExitStack) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="sb-gb-"))
    stack.callback(shutil.rmtree, tmp, True)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SWITCHBACK_ALLOWED_SOURCE_ROOTS": str(tmp),
        "LOG_LEVEL": "WARNING",
    })
    recreate_database(args.database_url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    stack.callback(connections.close_all)

    from deployments import engine
    from deployments.models import DeploymentEvent
    from deployments.runtimes import _cache, runtime_cache_clear
    from deployments.runtimes.single_host import SingleHostRuntime
    from deployments.runtimes.single_host.containers import list_replicas, remove_container
    from deployments.runtimes.single_host.engine_api import connect
    from deployments.services import deployment_request, project_create, project_update

    sys.path.insert(0, str(ROOT / "bench"))
    from common import free_port

    handle = connect(f"unix://{tmp}/podman.sock", start_service=True)
    stack.callback(handle.stop)
    apps_port = free_port()
    runtime = SingleHostRuntime(handle.url, state_dir=str(tmp / "state"), haproxy_bind=f"127.0.0.1:{apps_port}",
                                instance="gbench")
    runtime.router.ensure_running()
    stack.callback(runtime.close, stop_router=True)
    runtime_cache_clear()
    _cache[("single-host", "")] = runtime
    slug = f"gb{secrets.token_hex(3)}"

    def cleanup() -> None:
        for container in list_replicas(handle.client):
            if container.labels.get("switchback.project", "") == slug:
                with contextlib.suppress(Exception):
                    remove_container(container, stop_timeout=0)
        for image in handle.client.images.list(filters={"label": "switchback.project"}):
            if image.labels.get("switchback.project", "") == slug:
                for tag in image.tags or [image.id]:
                    with contextlib.suppress(Exception):
                        handle.client.images.remove(tag, force=True)
        for network in handle.client.networks.list(filters={"label": "switchback.project"}):
            if (network.attrs.get("Labels") or {}).get("switchback.project", "") == slug:
                with contextlib.suppress(Exception):
                    network.remove()

    stack.callback(cleanup)
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    project = project_create(
        actor=None, name="Gate bench", slug=slug, repository=f"bench/{slug}", clone_url=f"file://{repo}",
        probe_period_seconds=0.2, ready_timeout_seconds=60, drain_seconds=1, keep_warm_seconds=600,
        watch_seconds=0)
    first = drive(engine, deployment_request(project=project, sha=commit(repo, "stable"), actor=None))
    if first.state != "succeeded":
        raise RuntimeError(f"the stable deploy {first.state}: {first.failure_reason}")
    print(f"stable revision {first.revision} live on 127.0.0.1:{apps_port} (Host {slug}.localhost)", flush=True)

    rounds = []
    poller = WeightPoller(runtime, slug)
    poller.thread.start()
    stack.callback(poller.stop.set)
    with Load(apps_port, f"{slug}.localhost", args.threads) as load:
        time.sleep(2)  # the load settles
        for n in range(1, args.rounds + 1):
            from deployments.models import Project

            project = project_update(
                project=Project.objects.get(pk=project.pk), actor=None, env={"FAIL_PERCENT": "20"},
                gates={"error_rate": True},
                strategy={"steps": [{"weight": 10, "wait": 600}, {"weight": 50, "wait": 600}]})
            requested = time.time()
            d = deployment_request(project=project, sha=commit(repo, f"bad {n}"), actor=None)
            poller.watch(d.revision)
            d = drive(engine, d)
            events = DeploymentEvent.objects.filter(deployment=d).order_by("pk")
            applied = next((e.created_at.timestamp() for e in events
                            if e.kind == DeploymentEvent.Kind.TRAFFIC), None)
            first_fail = next((e.created_at.timestamp() for e in events
                               if e.message.startswith("Gate failed")), None)
            deadline = time.monotonic() + 10
            while poller.back_at is None and time.monotonic() < deadline:
                time.sleep(0.01)
            back = poller.back_at
            if d.state != "failed" or applied is None or first_fail is None or back is None:
                raise RuntimeError(f"round {n}: #{d.number} {d.state} {d.failure_reason!r}")
            time.sleep(max(0.0, requested + 60 - time.time()))  # the fixed window's end
            exposure = load.between(applied, back)
            whole = load.between(requested, back)
            window = load.between(requested, requested + 60)
            rounds.append({
                "round": n, "number": d.number, "reason": d.failure_reason,
                "exposure": exposure, "whole": whole, "window": window,
                "exposure_s": back - applied, "to_stable_s": back - first_fail,
            })
            r = rounds[-1]
            print(f"round {n}: #{d.number} rolled back after {r['exposure_s']:.1f}s at 10%; "
                  f"{exposure[1]}/{exposure[0]} failed in the exposure; first failing check -> stable "
                  f"{r['to_stable_s']:.2f}s; {d.failure_reason}", flush=True)
    return rounds


def report(rounds: list[dict], args) -> None:
    def share(pair):
        return 100 * pair[1] / pair[0] if pair[0] else 0.0

    print(f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {host_platform.node()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.threads} client threads\n")
    print("| round | exposure at 10% (s) | failed / all in exposure | failed, request -> rollback "
          "| failed in 60 s window | first failing check -> stable (s) |")
    print("|---|---|---|---|---|---|")
    for r in rounds:
        print(f"| {r['round']} | {r['exposure_s']:.1f} | {r['exposure'][1]}/{r['exposure'][0]} "
              f"({share(r['exposure']):.2f}%) | {share(r['whole']):.2f}% | {share(r['window']):.2f}% "
              f"| {r['to_stable_s']:.2f} |")
    worst = max(r["to_stable_s"] for r in rounds)
    window = max(share(r["window"]) for r in rounds)
    print(f"\nworst first failing check -> stable: {worst:.2f}s (target < 5 s: "
          f"{'met' if worst < 5 else 'missed'}); worst failed share of all requests over the 60 s window: "
          f"{window:.2f}% (target < 0.5%: {'met' if window < 0.5 else 'missed'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8, help="closed-loop client threads")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/switchback_gates_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    args = parser.parse_args()
    rounds: list[dict] = []
    try:
        with contextlib.ExitStack() as stack:
            rounds = run(args, stack)
    finally:
        with contextlib.suppress(Exception):
            import redis

            redis.Redis.from_url(args.redis_url).flushdb()
    if rounds:
        report(rounds, args)
    return 0 if rounds else 1


if __name__ == "__main__":
    sys.exit(main())
