"""What `switchback deploy --watch` costs the platform per poll, and the CLI's own start-up.

Seeds a fresh PostgreSQL database with one deployment whose timeline holds --events
events (a long build log), serves it with gunicorn (production settings), and times
sequential requests over a keep-alive connection with a token:
  - the deployment detail (every event: what a watch would fetch without a cursor);
  - the rollout endpoint with `after` = the last event (a watch poll while nothing is new);
  - the rollout endpoint from the start (one page of at most 500 events).
Then the CLI as a person runs it (a subprocess each time): `switchback --help` and
`switchback history bench --json` against that server.

    .venv/bin/python bench/cli_watch.py --events 5000 --requests 200

Prints a table; copy it with the date and machine into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
from common import free_port  # bench/common.py (this script's folder is on sys.path)
from common import percentile_nearest as percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seed(events: int) -> tuple[str, int]:
    """A project, a deployer with a token, one live deployment with `events` events: (token, last event id)."""
    import django

    django.setup()
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from deployments.models import Deployment, DeploymentEvent, Membership, Project, State, Trigger
    from deployments.services import project_create
    from deployments.services_members import token_regenerate

    user = get_user_model().objects.create_user("bench", password="bench-password")
    project = project_create(actor=None, name="Bench", slug="bench", repository="bench/app", webhook_secret="x")
    Membership.objects.create(project=project, user=user, role="deployer")
    at = timezone.now() - timedelta(minutes=5)
    deployment = Deployment.objects.create(
        project=project, number=1, commit_sha="1" * 40, message="bench", trigger=Trigger.API,
        requested_by_name="bench", state=State.SUCCEEDED, image="bench:1", image_digest="sha256:" + "1" * 64,
        config=project.runtime_config(), started_at=at, built_at=at, ready_at=at, live_at=at, finished_at=at,
        progress={"weights": {"1": 100}})
    rows = [DeploymentEvent(deployment=deployment, kind="phase", message="Building.", data={"phase": "building"})]
    rows += [DeploymentEvent(deployment=deployment, kind="log", message=f"STEP {i % 9 + 1}/9: RUN make part-{i} "
                             + "x" * 60) for i in range(events - 2)]
    rows += [DeploymentEvent(deployment=deployment, kind="phase", message="Succeeded.", data={"phase": "succeeded"})]
    DeploymentEvent.objects.bulk_create(rows, batch_size=5000)
    Project.objects.filter(pk=project.pk).update(live_deployment=deployment, deployment_counter=1)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return token_regenerate(user=user), DeploymentEvent.objects.order_by("-id").values_list("id", flat=True)[0]


def timed(fn, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        t = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - t) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per row")
    parser.add_argument("--cli-runs", type=int, default=20, help="timed CLI runs per row")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/switchback_bench_cli")
    args = parser.parse_args()

    db_name = args.database_url.rsplit("/", 1)[1]
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", db_name], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db_name], check=True)
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.production", "DATABASE_URL": args.database_url,
           "SECRET_KEY": "bench-only",
           "SWITCHBACK_ENCRYPTION_KEYS": "YmVuY2gtb25seS1ub3QtYS1yZWFsLWtleS0wMDAwMDA=", "ALLOWED_HOSTS": "127.0.0.1",
           "SECURE_COOKIES": "false", "SECURE_SSL_REDIRECT": "0",
           "LOG_LEVEL": "WARNING", "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")}
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=os.environ, check=True)
    token, last = seed(args.events)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn",
                               "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                               "--log-level", "warning"], cwd=ROOT, env=os.environ, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for _ in range(100):
            try:
                requests.get(base + "/healthz", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        scenarios = [
            (f"deployment detail (all {args.events} events)", "/api/projects/bench/deployments/1/"),
            ("rollout poll, nothing new (after=last)", f"/api/projects/bench/deployments/1/rollout/?after={last}"),
            ("rollout poll from the start (500 events)", "/api/projects/bench/deployments/1/rollout/?after=0"),
        ]
        for name, path in scenarios:
            for _ in range(5):
                response = api.get(base + path, timeout=30)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
            size = len(response.content)
            timings = timed(lambda path=path: api.get(base + path, timeout=30).raise_for_status(), args.requests)
            rows.append((name, timings, size))

        cli_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "SECRET"))}
        cli_env.update(SWITCHBACK_URL=base, SWITCHBACK_TOKEN=token)
        for name, argv in (("CLI: switchback --help", ["--help"]),
                           ("CLI: switchback history bench --json", ["history", "bench", "--json"])):
            command = [sys.executable, "-m", "switchback_cli", *argv]

            def run(command=command):
                subprocess.run(command, cwd=ROOT, env=cli_env, check=True, capture_output=True)

            run()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            timings = timed(run, args.cli_runs)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / args.cli_runs * 1000
            rows.append((name, timings, f"CPU {cpu:.0f} ms/run"))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)

    print(f"# cli_watch: one deployment with {args.events} events; {args.requests} sequential requests per "
          f"API row, {args.cli_runs} runs per CLI row")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"gunicorn 2 sync workers, PostgreSQL on loopback")
    print()
    print("| what | p50 ms | p95 ms | max ms | bytes (API) / CPU (CLI) |")
    print("|---|---:|---:|---:|---:|")
    for name, timings, size in rows:
        print(f"| {name} | {statistics.median(timings):.1f} | {percentile(timings, 95):.1f} | {max(timings):.1f} "
              f"| {'' if size is None else size} |")


if __name__ == "__main__":
    main()
