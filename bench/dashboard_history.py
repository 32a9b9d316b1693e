"""The project page and the history API over a project with 10,000 deployments.

Seeds a fresh PostgreSQL database (10,000 deployments, each with a few events, the last
one live), serves it with gunicorn (production settings), and times sequential requests
over a keep-alive connection as a logged-in deployer (page) and with a token (API):
page 1, a page in the middle, the last page, and the htmx partial the page polls.

    .venv/bin/python bench/dashboard_history.py --deployments 10000 --requests 300

Target: p95 < 100 ms.  Also prints the SQL queries per request (constant whatever the page).
Prints a table; copy it with the date and machine into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
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


def seed(count: int) -> tuple[str, str]:
    """Create the project, a deployer with a token, and `count` deployments; return (sessionid, token)."""
    import django

    django.setup()
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from deployments.models import Deployment, DeploymentEvent, Membership, Project, State, Trigger
    from deployments.services import project_create
    from deployments.services_members import token_regenerate

    user = get_user_model().objects.create_user("bench", password="bench-password")
    project = project_create(actor=None, name="Bench", slug="bench", repository="bench/app", webhook_secret="x")
    Membership.objects.create(project=project, user=user, role="deployer")
    start = timezone.now() - timedelta(minutes=count * 10)
    config = project.runtime_config()
    batch = []
    triggers = [Trigger.MERGE, Trigger.MERGE, Trigger.PUSH, Trigger.API, Trigger.ROLLBACK]
    for i in range(1, count + 1):
        at = start + timedelta(minutes=10 * i)
        failed = i % 17 == 0
        batch.append(Deployment(
            project=project, number=i, commit_sha=f"{i:040x}",
            message=f"Merge pull request #{i} from bench/feature-{i}",
            author="bench", trigger=triggers[i % len(triggers)], requested_by_name="bench",
            state=State.FAILED if failed else State.SUCCEEDED,
            failure_reason="Revision failed its probes" if failed else "",
            image=f"bench:{i:040x}", image_digest=f"sha256:{i:064x}", config=config,
            started_at=at, built_at=at + timedelta(seconds=40), ready_at=at + timedelta(seconds=50),
            live_at=None if failed else at + timedelta(seconds=51), finished_at=at + timedelta(seconds=51),
        ))
    Deployment.objects.bulk_create(batch, batch_size=2000)
    ids = list(Deployment.objects.filter(project=project).values_list("id", flat=True))
    events = [DeploymentEvent(deployment_id=pk, kind=kind, message=message)
              for pk in ids for kind, message in (("phase", "Building."), ("log", "step 1/4"), ("phase", "Succeeded."))]
    DeploymentEvent.objects.bulk_create(events, batch_size=5000)
    live = Deployment.objects.filter(project=project, state=State.SUCCEEDED).order_by("-number").first()
    Project.objects.filter(pk=project.pk).update(live_deployment=live, deployment_counter=count)
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    token = token_regenerate(user=user)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return session.session_key, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/switchback_bench_dashboard")
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
    t0 = time.perf_counter()
    session_id, token = seed(args.deployments)
    seeded = time.perf_counter() - t0

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn",
                               "config.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", str(args.workers), "--log-level", "warning"],
                              cwd=ROOT, env=os.environ, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(base + "/healthz", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        pages = (args.deployments + 24) // 25
        page_session = requests.Session()
        page_session.cookies.set("sessionid", session_id)
        api_session = requests.Session()
        api_session.headers["Authorization"] = f"Token {token}"
        scenarios = [
            ("project page, page 1", page_session, "/projects/bench/", {}),
            (f"project page, page {pages // 2}", page_session, f"/projects/bench/?page={pages // 2}", {}),
            (f"project page, page {pages} (last)", page_session, f"/projects/bench/?page={pages}", {}),
            ("project page, htmx poll (partial)", page_session, "/projects/bench/?showing=0",
             {"HX-Request": "true"}),
            ("history API, page 1", api_session, "/api/projects/bench/deployments/", {}),
            (f"history API, page {pages // 2}", api_session, f"/api/projects/bench/deployments/?page={pages // 2}", {}),
            (f"history API, page {pages} (last)", api_session, f"/api/projects/bench/deployments/?page={pages}", {}),
        ]
        rows = []
        for name, session, path, headers in scenarios:
            for _ in range(10):  # warm up connections and caches
                response = session.get(base + path, headers=headers, timeout=10)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
            timings = []
            for _ in range(args.requests):
                t = time.perf_counter()
                response = session.get(base + path, headers=headers, timeout=10)
                timings.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200
            rows.append((name, statistics.median(timings), percentile(timings, 95), percentile(timings, 99),
                         max(timings), len(response.content)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)

    queries = count_queries(session_id, token, pages)
    print(f"# dashboard_history: {args.deployments} deployments, {args.requests} sequential requests per row")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"gunicorn {args.workers} sync workers, PostgreSQL on loopback; seeded in {seeded:.1f}s")
    print()
    print("| request | p50 ms | p95 ms | p99 ms | max ms | bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, p50, p95, p99, worst, size in rows:
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {worst:.1f} | {size} |")
    print()
    print("| SQL queries per request | page 1 | middle page | last page |")
    print("|---|---:|---:|---:|")
    for name, counts in queries.items():
        print(f"| {name} | " + " | ".join(str(c) for c in counts) + " |")
    worst_p95 = max(r[2] for r in rows)
    print()
    print(f"target p95 < 100 ms: {'met' if worst_p95 < 100 else 'NOT met'} (worst p95 {worst_p95:.1f} ms)")


def count_queries(session_id: str, token: str, pages: int) -> dict[str, list[int]]:
    """Queries per request, in-process with the test client (the same code path)."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
    page = Client()
    page.cookies["sessionid"] = session_id
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    out = {}
    for name, client, path in (("project page", page, "/projects/bench/"),
                               ("history API", api, "/api/projects/bench/deployments/")):
        counts = []
        for number in (1, pages // 2, pages):
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(f"{path}?page={number}").status_code == 200
            counts.append(len(ctx))
        out[name] = counts
    return out


if __name__ == "__main__":
    main()
