"""Rollback latency with GitHub reporting and notifications on, side by side with off.

Issue 14 ("Measured"): a rollback's latency is unchanged within noise whether reporting
is on or off, measured side by side in one run.

What runs, all on loopback (the Kubernetes rollback bench's machinery, bench/k8s_rollback.py):
- the fake Kubernetes API server, timestamping every write of the project's stable
  Service (t1: the moment traffic moves to the target revision);
- the fake GitHub REST API (tests/doubles/github_api), answering every request after
  --github-delay seconds (a slow GitHub), and a local JSON receiver for a signed
  notification destination subscribed to every event;
- a throwaway PostgreSQL database, Redis db 12, gunicorn (production settings) and the
  Celery workers as `manage.py up` runs them: a main worker consuming every queue
  (celery, switch, reports) and a switch-only worker.

Two identical projects: "ghbench-on" reports to GitHub (platform token, commit status on)
and has the destination; "ghbench-off" has neither.  Rollbacks alternate between the
projects (each between its own #1 and #2) through the REST API, one at a time, so both
groups share the same minutes of the run and the reports of the "on" rollbacks are being
sent by the workers while the next rollbacks run.

    t0  just before POST /api/projects/<slug>/deployments/<n>/rollback/
    t1  the fake API server receives the Service write naming the target revision

    .venv/bin/python bench/github_reporting.py                  # about a minute
    .venv/bin/python bench/github_reporting.py --rollbacks 200 --github-delay 1.0
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import k8s_rollback as kb  # bench/k8s_rollback.py: the fake cluster, processes, databases
from common import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.doubles.github_api import FakeGitHub  # noqa: E402
from tests.doubles.kube_api.server import FakeKubeAPI  # noqa: E402

PYTHON = sys.executable
SLUGS = {"on": "ghbench-on", "off": "ghbench-off"}
REPOSITORY = "bench/ghbench"
results: dict = {}


class Receiver:
    """A notification destination: counts what arrives."""

    def __init__(self):
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.count += 1
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def hook_fake(fake: FakeKubeAPI, writes: dict) -> None:
    """Timestamp the stable Service writes of each project (bench/k8s_rollback.py's hook, per slug)."""
    from tests.doubles.kube_api import server as kube_server

    class TimedHandler(kube_server._Handler):
        def _dispatch(self, method):
            self._sb_arrival = (time.perf_counter(), time.time())
            return super()._dispatch(method)

        def _write(self, res, ns, name, sub, method, ctype, body, query):
            if res.plural == "services" and name in writes and not sub:
                t_perf, t_wall = getattr(self, "_sb_arrival", (time.perf_counter(), time.time()))
                writes[name].record(t_perf, t_wall, kb._selector_revision(body), method, ctype or "")
            return super()._write(res, ns, name, sub, method, ctype, body, query)

    fake._http.RequestHandlerClass = TimedHandler


def run(args, stack: contextlib.ExitStack) -> None:
    started = dt.datetime.now(dt.UTC)
    load_start = kb.loadavg()
    fake = FakeKubeAPI().start()
    stack.callback(fake.stop)
    writes = {slug: kb.ServiceWrites(slug) for slug in SLUGS.values()}
    hook_fake(fake, writes)
    github = FakeGitHub(repositories=(REPOSITORY,), tokens=("bench-token",)).start()
    github.delay = args.github_delay
    stack.callback(github.stop)
    receiver = Receiver()
    stack.callback(receiver.stop)

    tmp = Path(tempfile.mkdtemp(prefix="github-reporting-"))
    stack.callback(shutil.rmtree, tmp, True)
    kubeconfig = tmp / "kubeconfig"
    kb.write_kubeconfig(kubeconfig, fake.url)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
        "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_COOKIES": "0",
        "SECURE_SSL_REDIRECT": "0", "SWITCHBACK_ALLOWED_IMAGE_TEMPLATES": "registry.example.com/",
        "LOG_LEVEL": "WARNING", "KUBECONFIG": str(kubeconfig), "KUBE_NAMESPACE": "default",
        "SWITCHBACK_VAR_DIR": str(tmp / "var"), "PYTHONUNBUFFERED": "1",
        "GITHUB_API_URL": github.url, "GITHUB_TOKEN": "bench-token", "GITHUB_TIMEOUT_SECONDS": "10",
        "NOTIFY_ALLOWED_HTTP_HOSTS": "127.0.0.1", "NOTIFY_ALLOWED_PRIVATE_NETWORKS": "127.0.0.1/32",
        "SWITCHBACK_ENCRYPTION_KEYS": os.environ.get("SWITCHBACK_ENCRYPTION_KEYS")
        or "YmVuY2gtb25seS1rZXktbm90LXNlY3JldC0zMmJ5dGU=",
    }
    (tmp / "var").mkdir()
    os.environ.update(env)
    print(f"fake API server {fake.url}; fake GitHub {github.url} (answers after {args.github_delay:g}s); "
          f"database {args.database_url}; broker {args.redis_url}", flush=True)
    kb.recreate_database(args.database_url)
    if not args.keep_database:
        stack.callback(kb.drop_database, args.database_url)
    kb.flush_redis(args.redis_url)
    stack.callback(kb.flush_redis, args.redis_url)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    settings.SWITCHBACK["KUBERNETES"] = {"host": fake.url, "namespace": "default"}
    from deployments.runtimes import runtime_cache_clear

    runtime_cache_clear()
    call_command("migrate", verbosity=0)
    stack.callback(connections.close_all)

    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    from deployments.models import Deployment
    from deployments.services import deployment_request, project_create
    from reporting.models import GitHubConnection, NotificationDestination, Report
    from reporting.notifications import EVENTS

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", secrets.token_urlsafe(16))
    token = AuthToken.objects.create(user)[1]
    projects, revisions = {}, {}
    for mode, slug in SLUGS.items():
        project = project_create(actor=user, name=f"GitHub bench {mode}", slug=slug, repository=REPOSITORY,
                                 runtime="kubernetes", image_template="registry.example.com/ghbench:{sha}",
                                 probe_period_seconds=0.1, keep_warm_seconds=3600, replicas=1)
        numbers = []
        for sha in ("a" * 40, "b" * 40):
            deployment = kb.drive(deployment_request(project=project, sha=sha, actor=user).pk)
            if deployment.state != "succeeded":
                raise RuntimeError(f"setup deploy {deployment} {deployment.state}: {deployment.failure_reason}")
            numbers.append(deployment.number)
        projects[mode], revisions[mode] = project, numbers
    GitHubConnection.objects.create(project=projects["on"], commit_status=True)
    NotificationDestination.objects.create(project=projects["on"], name="bench", kind="webhook", url=receiver.url,
                                           secret="bench", events=EVENTS)
    kb.flush_redis(args.redis_url)
    connections.close_all()

    web_port = free_port()
    procs = [
        kb.Proc("gunicorn", [PYTHON, "-m", "gunicorn", "--config", "python:config.gunicorn", "config.wsgi",
                             "--bind", f"127.0.0.1:{web_port}", "--workers", "2", "--log-level", "warning"],
                env=env, log=tmp / "gunicorn.log"),
        kb.Proc("worker", [PYTHON, "-m", "celery", "-A", "config", "worker", "--concurrency", "3",
                           "--hostname", f"ghmain-{os.getpid()}@%h", "--loglevel", "INFO",
                           "--without-gossip", "--without-mingle", "--without-heartbeat"],
                env=env, log=tmp / "worker.log"),
        kb.Proc("switch-worker", [PYTHON, "-m", "celery", "-A", "config", "worker", "--queues", "switch",
                                  "--concurrency", "2", "--hostname", f"ghswitch-{os.getpid()}@%h",
                                  "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                                  "--without-heartbeat"], env=env, log=tmp / "switch.log"),
    ]
    for proc in procs:
        stack.callback(lambda p=proc: results.setdefault("leftover", []).append(p.name) if not p.stop() else None)

    import requests

    base = f"http://127.0.0.1:{web_port}"
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    stack.callback(session.close)

    def healthy():
        with contextlib.suppress(requests.RequestException):
            return session.get(f"{base}/healthz", timeout=1).status_code == 200
        return False

    kb.wait_until("gunicorn /healthz", healthy, 30, procs)
    for proc in procs[1:]:
        kb.wait_until(f"{proc.name} ready", lambda p=proc: " ready." in p.log.read_text(errors="replace"), 60, procs)
    print("gunicorn (2 workers); celery worker (all queues, concurrency 3) and switch worker (concurrency 2) ready",
          flush=True)

    samples = {"off": [], "on": []}
    live = {mode: str(numbers[1]) for mode, numbers in revisions.items()}
    for i in range(args.warmup + args.rollbacks):
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        mode = "on" if i % 2 else "off"
        slug, project, (first, second) = SLUGS[mode], projects[mode], revisions[mode]
        target = first if live[mode] == str(second) else second
        t0 = time.perf_counter()
        response = session.post(f"{base}/api/projects/{slug}/deployments/{target}/rollback/", timeout=args.timeout)
        if response.status_code != 202:
            raise RuntimeError(f"rollback to {slug}#{target}: HTTP {response.status_code} {response.text[:300]}")
        number = response.json()["number"]
        event = writes[slug].wait_for(str(target), after=t0, timeout=args.timeout)
        if event is None:
            raise RuntimeError(f"rollback {slug}#{number}: no Service write naming r{target} within {args.timeout}s")
        row = kb.wait_until(f"rollback {slug}#{number} to finish",
                            lambda n=number, p=project: Deployment.objects.filter(project=p, number=n,
                                                                                  state__in=kb.FINAL)
                            .values("state", "failure_reason").first(), args.timeout, procs, interval=0.005)
        if row["state"] != "succeeded":
            raise RuntimeError(f"rollback {slug}#{number}: {row['state']}: {row['failure_reason']}")
        live[mode] = str(target)
        if i >= args.warmup:
            samples[mode].append((event[0] - t0) * 1000)
        if args.gap:
            time.sleep(args.gap)

    # Let the outbox drain (the slow GitHub answers one request per --github-delay).
    def drained():
        return not Report.objects.filter(state="pending").exists()

    with contextlib.suppress(RuntimeError):
        kb.wait_until("the reports to be sent", drained, args.drain, procs, interval=0.5)
    counts = {state: Report.objects.filter(state=state).count() for state in ("sent", "pending", "failed",
                                                                               "skipped")}
    results.update(samples=samples, started=started, load=(load_start, kb.loadavg()), reports=counts,
                   github_requests=len(github.requests), notifications=receiver.count)


def report(args) -> None:
    samples = results.get("samples") or {}
    if not samples.get("on") or not samples.get("off"):
        print("no samples")
        return

    def stats(values):
        return (statistics.median(values), kb.percentile(values, 90), kb.percentile(values, 99), max(values))

    print(f"\n### github_reporting: warm rollback latency, reporting on vs off "
          f"({results['started']:%Y-%m-%d %H:%M} UTC)\n")
    print(f"- machine: {os.cpu_count()} CPUs, {kb.cpu_model()}, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}; load average {results['load'][0]} at the start, "
          f"{results['load'][1]} at the end")
    print(f"- {len(samples['off']) + len(samples['on'])} rollbacks after {args.warmup} warm-up, alternating "
          f"between a project without reporting and one with GitHub reporting (deployment statuses and commit "
          f"status) and a signed JSON destination on every event; fake GitHub answers after {args.github_delay:g} s")
    print(f"- reports at the end: {json.dumps(results['reports'])}; GitHub requests received "
          f"{results['github_requests']}; notifications received {results['notifications']}\n")
    print("| reporting | n | p50 (ms) | p90 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in ("off", "on"):
        values = samples[mode]
        print(f"| {mode} | {len(values)} | " + " | ".join(f"{v:.1f}" for v in stats(values)) + " |")
    off, on = stats(samples["off"]), stats(samples["on"])
    print(f"\np50 difference (on - off): {on[0] - off[0]:+.1f} ms; p99 difference: {on[2] - off[2]:+.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollbacks", type=int, default=100, help="measured rollbacks (half with reporting on)")
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--github-delay", type=float, default=0.2, help="seconds the fake GitHub takes to answer")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between one rollback's success and the next")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds one rollback may take")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the outbox to drain")
    parser.add_argument("--budget", type=int, default=900, help="seconds the whole run may take")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/switchback_ghbench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()

    def over_budget(signum, frame):
        raise kb.BudgetExceeded(f"the run exceeded its budget of {args.budget}s")

    signal.signal(signal.SIGALRM, over_budget)
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.alarm(args.budget)
    failed = False
    try:
        with contextlib.ExitStack() as stack:
            run(args, stack)
            signal.alarm(0)
            signal.alarm(60)
    except (Exception, KeyboardInterrupt) as exc:
        failed = True
        print(f"FAILED: {exc.__class__.__name__}: {exc}", file=sys.stderr)
    finally:
        signal.alarm(0)
    if results.get("leftover"):
        print(f"LEFT BEHIND: processes of {', '.join(results['leftover'])}", file=sys.stderr)
        failed = True
    report(args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
