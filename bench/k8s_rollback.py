"""Warm rollback on Kubernetes: from the rollback request to the stable Service patch.

Issue 4 ("Measured"): from a rollback request to the Service patch reaching the API
server, against the fake server, p99 under 100 ms.

What runs, all on loopback:
- the fake Kubernetes API server (tests/doubles/kube_api), in this process, with its
  request handler wrapped to timestamp every PUT/PATCH of the project's stable Service
  (the moment the request line and headers have been read) and the revision its selector
  names;
- PostgreSQL: a throwaway database (dropped and created, migrated; dropped at the end);
- Redis db 12 as the broker (flushed before and after);
- `gunicorn config.wsgi` (production settings) and, by default (--layout shipped), the
  Celery processes of platform/kubernetes: `worker` (every queue), `switch-worker`
  (`--queues switch`) and `beat` with the platform's schedule (outbox sweep, reconciler,
  liveness sweep, reports), as platform/entrypoint.sh starts them; --layout single runs
  one worker `-Q celery,switch` and no beat (the figures before 2026-12-01).  They reach
  the fake through a kubeconfig written to a temporary folder (KUBECONFIG), as a deployed
  platform would reach a cluster;
- --busy N (default 4) other projects (Gateway router, a canary 10% -> 50%, 3 s a step),
  each kept with a rollout in flight by a thread of the bench that requests a new commit
  when the project has none under way or its rollout is older than --busy-period: the
  workers, the reconciler and PostgreSQL are busy with them meanwhile.  By default
  (--busy-api own) they run on a second cluster whose fake API server is a process of its
  own: with them on the measured fake (--busy-api shared), that fake's answers waited tens
  of milliseconds for this process's GIL (a real API server serves them on other cores).
  That process runs at nice 19 (--busy-api-nice): its simulated controllers loop over every
  object every 10 ms and took 78% of a core on the 2-core machine, CPU a real cluster spends
  on its own machines, not the platform's.  The platform's own work for those projects
  (workers, reconciler, PostgreSQL) runs at its usual priority.

A project with runtime "kubernetes", a prebuilt image template, a 0.1 s probe period and
a long keep-warm is deployed twice in this process by driving `engine.rollout_step`
(as tests/deployments/test_engine_kubernetes.py does).  Then N rollbacks alternate between
#1 and #2 (both stay warm), each requested as a user would: POST
/api/projects/<slug>/deployments/<n>/rollback/ with a token, over HTTP.  The next rollback
is requested once the previous one has succeeded.

    t0  just before the POST is sent
    t1  the fake API server receives the PATCH/PUT on services/<slug> naming the target
        revision in its selector

Breakdown (wall clock; the database timestamps come from the same host clock):
API answered (t0 -> 202), t0 -> row created, worker pickup (created_at -> started_at),
engine (started_at -> t1), and t1 -> succeeded (finished_at).

    .venv/bin/python bench/k8s_rollback.py                    # the documented figure (shipped layout)
    .venv/bin/python bench/k8s_rollback.py --layout single --busy 0   # as before 2026-12-01
    .venv/bin/python bench/k8s_rollback.py --rollbacks 500 --concurrency 4

Everything is bounded in time (--budget for the whole run, --timeout per rollback); the
subprocesses run in their own sessions and are stopped with SIGTERM (SIGKILL after 15 s),
and the run checks that none of their processes is left.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import free_port  # bench/common.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.doubles.kube_api import server as kube_server  # noqa: E402
from tests.doubles.kube_api.server import FakeKubeAPI  # noqa: E402

PYTHON = sys.executable
REV_LABEL = "switchback.dev/revision"  # deployments.runtimes.kubernetes.manifests.LABEL_REVISION
SLUG = "kbench"
FINAL = {"succeeded", "failed", "cancelled", "superseded"}


class BudgetExceeded(Exception):
    pass


# --- the hook on the fake API server --------------------------------------------------------


class ServiceWrites:
    """Every PUT/PATCH of services/<slug>: (arrival perf_counter, arrival wall, revision named)."""

    def __init__(self, slug: str):
        self.slug = slug
        self.cond = threading.Condition()
        self.events: list[tuple[float, float, str | None, str, str]] = []
        # Every request the fake answered: (arrival perf_counter, seconds to answer, method, path).
        self.all: list[tuple[float, float, str, str]] = []

    def between(self, start: float, end: float) -> list[tuple[float, float, str, str]]:
        with self.cond:
            return [r for r in self.all if start <= r[0] <= end]

    def record(self, t_perf: float, t_wall: float, revision: str | None, method: str, ctype: str) -> None:
        with self.cond:
            self.events.append((t_perf, t_wall, revision, method, ctype))
            self.cond.notify_all()

    def wait_for(self, revision: str, after: float, timeout: float):
        """The first write naming `revision` that arrived at or after `after` (perf_counter)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for event in self.events:
                    if event[0] >= after and event[2] == revision:
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)


def _selector_revision(body) -> str | None:
    """The revision a Service body (apply/merge/strategic/PUT) or JSON patch names."""
    if isinstance(body, dict):
        selector = (body.get("spec") or {}).get("selector")
        if isinstance(selector, dict) and REV_LABEL in selector:
            return str(selector[REV_LABEL])
    elif isinstance(body, list):
        escaped = REV_LABEL.replace("~", "~0").replace("/", "~1")
        for op in body:
            if not isinstance(op, dict) or op.get("op") not in ("add", "replace"):
                continue
            if op.get("path") == "/spec/selector" and isinstance(op.get("value"), dict):
                if REV_LABEL in op["value"]:
                    return str(op["value"][REV_LABEL])
            if op.get("path") == f"/spec/selector/{escaped}":
                return str(op.get("value"))
            if op.get("path") == "/spec" and isinstance(op.get("value"), dict):
                return _selector_revision({"spec": op["value"]})
    return None


def hook_fake(fake: FakeKubeAPI, writes: ServiceWrites) -> None:
    """Swap the fake's request handler for a subclass that timestamps stable-Service writes."""

    class TimedHandler(kube_server._Handler):
        def _dispatch(self, method):
            self._sb_arrival = (time.perf_counter(), time.time())
            try:
                return super()._dispatch(method)
            finally:
                t = self._sb_arrival[0]
                with writes.cond:
                    writes.all.append((t, time.perf_counter() - t, method, self.path))

        def _write(self, res, ns, name, sub, method, ctype, body, query):
            if res.plural == "services" and name == writes.slug and not sub:
                t_perf, t_wall = getattr(self, "_sb_arrival", (time.perf_counter(), time.time()))
                writes.record(t_perf, t_wall, _selector_revision(body), method, ctype or "")
            return super()._write(res, ns, name, sub, method, ctype, body, query)

    fake._http.RequestHandlerClass = TimedHandler


BUSY_FAKE = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from tests.doubles.kube_api.server import FakeKubeAPI
fake = FakeKubeAPI().start()
print("listening", fake.url, flush=True)
threading.Event().wait()
"""


# --- helpers -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def recreate_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def write_kubeconfig(path: Path, server: str) -> None:
    path.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: fake\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n"
        "users:\n"
        "- name: bench\n  user: {}\n"
        "contexts:\n"
        "- name: fake\n  context:\n    cluster: fake\n    user: bench\n    namespace: default\n"
        "current-context: fake\n"
    )


class Proc:
    """A subprocess in its own session (process group), output to a file."""

    def __init__(self, name: str, argv: list[str], *, env: dict, log: Path):
        self.name, self.log = name, log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> bool:
        """SIGTERM the group, SIGKILL after 15 s; True when no process of the group is left."""
        pgid = self.popen.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.popen.wait(5)
        # Children (gunicorn workers, the Celery pool) may outlive their parent briefly.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.5)
        self._out.close()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False


def wait_until(what: str, check, timeout: float, procs: list[Proc] = (), interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


class BusyProjects(threading.Thread):
    """Keeps one rollout in flight on each of the other projects: requests a new commit
    (through the services, committed and enqueued as the API would) whenever the project
    has none under way, or when its current one is older than `period` seconds."""

    def __init__(self, projects, *, user, period: float):
        super().__init__(name="busy-projects", daemon=True)
        self.projects, self.user, self.period = projects, user, period
        self.halt = threading.Event()
        self.requested = 0
        self.errors: list[str] = []
        self._in_flight = 0

    def in_flight(self) -> int:
        return self._in_flight

    def run(self):
        from django.db import connection

        from deployments.models import Deployment
        from deployments.services import deployment_request

        active = ("queued", "building", "starting", "verifying", "switching")
        last: dict[int, float] = {}
        try:
            while not self.halt.is_set():
                in_flight = 0
                for project in self.projects:
                    current = (Deployment.objects.filter(project=project, state__in=active)
                               .order_by("-number").values_list("number", flat=True).first())
                    if current is not None:
                        in_flight += 1
                    if current is None or time.monotonic() - last.get(project.pk, 0) > self.period:
                        try:
                            deployment_request(project=project, sha=secrets.token_hex(20), actor=self.user)
                            self.requested += 1
                            last[project.pk] = time.monotonic()
                        except Exception as exc:  # noqa: BLE001 - reported at the end
                            self.errors.append(f"{project.slug}: {exc}")
                self._in_flight = in_flight
                self.halt.wait(0.5)
        finally:
            connection.close()

    def stop(self):
        self.halt.set()
        if self.is_alive():
            self.join(10)

    def summary(self) -> dict:
        from deployments.models import Deployment

        states: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for project in self.projects:
            for state, reason in Deployment.objects.filter(project=project).values_list("state", "failure_reason"):
                states[state] = states.get(state, 0) + 1
                if state == "failed":
                    reasons[reason[:120]] = reasons.get(reason[:120], 0) + 1
        return {"requested": self.requested, "errors": self.errors[:3], "states": states,
                "failures": sorted(reasons.items(), key=lambda kv: -kv[1])[:3]}


# --- the run -------------------------------------------------------------------------------


def drive(deployment_id: int, *, timeout: float = 30.0):
    """Run the engine's steps in this process until the deployment is final (as the tests do)."""
    from deployments import engine
    from deployments.models import Deployment

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delay = engine.rollout_step(deployment_id=deployment_id)
        if delay is None:
            break
        time.sleep(min(delay, 0.05))
    return Deployment.objects.get(pk=deployment_id)


def run(args, stack: contextlib.ExitStack) -> dict:
    started = dt.datetime.now(dt.UTC)
    load_start = loadavg()

    fake = FakeKubeAPI().start()
    stack.callback(fake.stop)
    writes = ServiceWrites(SLUG)
    hook_fake(fake, writes)

    tmp = Path(tempfile.mkdtemp(prefix="k8s-rollback-"))
    stack.callback(shutil.rmtree, tmp, True)
    kubeconfig = tmp / "kubeconfig"
    write_kubeconfig(kubeconfig, fake.url)

    busy_cluster = ""
    extra_env = {}
    if args.busy and args.busy_api == "own":
        # The other projects run on a second cluster whose API server (another fake) is a
        # process of its own: the measured project's fake then answers as an API server
        # does (a real one serves this load on other cores), not after the GIL of a Python
        # process busy with four canaries' watches.
        nice = ["nice", "-n", str(args.busy_api_nice)] if args.busy_api_nice else []
        busy_fake = Proc("busy-api", [*nice, PYTHON, "-c", BUSY_FAKE, str(ROOT)], env=dict(os.environ),
                         log=tmp / "busy-api.log")
        stack.callback(lambda: results.setdefault("leftover", []).append("busy-api") if not busy_fake.stop() else None)
        busy_url = wait_until("the other projects' fake API server", lambda: next(
            (ln.split()[-1] for ln in busy_fake.log.read_text().splitlines() if ln.startswith("listening ")), None),
            30, [busy_fake])
        write_kubeconfig(tmp / "kubeconfig-busy", busy_url)
        busy_cluster = "busy"
        extra_env["KUBE_CLUSTERS"] = json.dumps({"busy": {"kubeconfig": str(tmp / "kubeconfig-busy"),
                                                           "namespace": "default"}})

    env = {
        **os.environ,
        **extra_env,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SWITCHBACK_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "0",
        "SECURE_SSL_REDIRECT": "0",
        # The bench's prebuilt images come from this (fake) registry: the operator allows it.
        "SWITCHBACK_ALLOWED_IMAGE_TEMPLATES": "registry.example.com/",
        "LOG_LEVEL": "WARNING",
        "KUBECONFIG": str(kubeconfig),
        "KUBE_NAMESPACE": "default",
        "SWITCHBACK_VAR_DIR": str(tmp / "var"),
        "PYTHONUNBUFFERED": "1",
    }
    (tmp / "var").mkdir()
    os.environ.update(env)

    print(f"fake API server at {fake.url}; database {args.database_url}; broker {args.redis_url}", flush=True)
    recreate_database(args.database_url)
    if not args.keep_database:
        stack.callback(drop_database, args.database_url)
    flush_redis(args.redis_url)
    stack.callback(flush_redis, args.redis_url)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    # This process drives the first deploys itself, straight at the fake.
    settings.SWITCHBACK["KUBERNETES"] = {"host": fake.url, "namespace": "default"}
    from deployments.runtimes import runtime_cache_clear

    runtime_cache_clear()
    call_command("migrate", verbosity=0)
    stack.callback(connections.close_all)

    from django.contrib.auth import get_user_model

    from deployments.models import Deployment
    from deployments.services import deployment_request, project_create
    from deployments.services_members import token_regenerate

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", secrets.token_urlsafe(16))
    token = token_regenerate(user=user)
    project = project_create(
        actor=user, name="K8s bench", slug=SLUG, repository="bench/kbench",
        runtime="kubernetes", image_template="registry.example.com/kbench:{sha}",
        probe_period_seconds=0.1, keep_warm_seconds=args.keep_warm, replicas=1,
    )
    revisions = []
    for sha in ("a" * 40, "b" * 40):
        deployment = drive(deployment_request(project=project, sha=sha, actor=user).pk)
        if deployment.state != "succeeded":
            raise RuntimeError(f"setup deploy #{deployment.number} {deployment.state}: {deployment.failure_reason}")
        revisions.append(deployment.number)
    svc = fake.get("services", "default", SLUG)
    print(f"deployed #{revisions[0]} and #{revisions[1]} in-process; stable Service selects "
          f"r{svc['spec']['selector'][REV_LABEL]}", flush=True)
    # Other projects with rollouts in flight while the rollbacks are measured: a canary
    # (10% then 50%, a few seconds each) on every one, a new commit requested as soon as
    # the previous rollout ends or after busy_period seconds (superseding it mid-canary).
    busy_projects = []
    for n in range(args.busy):
        other = project_create(
            actor=user, name=f"Busy {n}", slug=f"busy{n}", repository=f"bench/busy{n}",
            runtime="kubernetes", image_template=f"registry.example.com/busy{n}:{{sha}}",
            probe_period_seconds=0.2, keep_warm_seconds=30, replicas=1, router="gateway", cluster=busy_cluster,
            strategy={"steps": [{"weight": 10, "wait": 3}, {"weight": 50, "wait": 3}]},
        )
        deployment = drive(deployment_request(project=other, sha=f"{n:02x}" * 20, actor=user).pk, timeout=60)
        if deployment.state != "succeeded":
            raise RuntimeError(f"setup of {other.slug}: #{deployment.number} {deployment.state}: "
                               f"{deployment.failure_reason}")
        busy_projects.append(other)
    # The setup published rollout steps and a retirement nobody consumed: start clean.
    flush_redis(args.redis_url)
    connections.close_all()

    web_port = free_port()
    web = Proc("gunicorn", [PYTHON, "-m", "gunicorn", "--config", "python:config.gunicorn",
                            "config.wsgi", "--bind", f"127.0.0.1:{web_port}",
                            "--workers", str(args.web_workers), "--timeout", "30", "--log-level", "warning"],
               env=env, log=tmp / "gunicorn.log")
    procs = [web]
    stack.callback(lambda: results.setdefault("leftover", []).append("gunicorn") if not web.stop() else None)
    celery = [PYTHON, "-m", "celery", "-A", "config"]
    if args.layout == "shipped":
        # platform/entrypoint.sh's own roles, as platform/kubernetes/{worker,switch-worker,beat}.yaml
        # run them (one replica of each here): `worker` on every queue, `switch-worker` on the
        # switch queue alone, and beat with the platform's schedule (outbox sweep, reconciler,
        # liveness, reports).
        role_env = {**env, "SWITCHBACK_HOME": str(ROOT), "HOSTNAME": f"kbench-{os.getpid()}",
                    "PATH": f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}",
                    "LOG_LEVEL": "INFO",  # the workers' "ready." line, which the bench waits for
                    "WORKER_CONCURRENCY": str(args.concurrency), "SWITCH_WORKER_CONCURRENCY": str(args.concurrency),
                    "CELERY_BEAT_SCHEDULE_FILE": str(tmp / "celerybeat-schedule")}
        entrypoint = str(ROOT / "platform" / "entrypoint.sh")
        layout = [(role, ["bash", entrypoint, role]) for role in ("worker", "switch-worker", "beat")]
    else:
        layout = [("celery", [*celery, "worker", "-Q", "celery,switch", "--concurrency", str(args.concurrency),
                              "--pool", args.pool, "--loglevel", "INFO", "--hostname", f"kbench-{os.getpid()}@%h",
                              "--without-gossip", "--without-mingle", "--without-heartbeat"])]
    workers = []
    for name, argv in layout:
        proc = Proc(name, argv, env=role_env if args.layout == "shipped" else env, log=tmp / f"{name}.log")
        procs.append(proc)
        if name != "beat":
            workers.append(proc)
        stack.callback(lambda p=proc: results.setdefault("leftover", []).append(p.name) if not p.stop() else None)
    worker = workers[0]

    import requests

    base = f"http://127.0.0.1:{web_port}"
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    stack.callback(session.close)

    def healthy():
        with contextlib.suppress(requests.RequestException):
            return session.get(f"{base}/healthz", timeout=1).status_code == 200
        return False

    wait_until("gunicorn /healthz", healthy, 30, procs)
    for proc in workers:
        wait_until(f"the Celery {proc.name} to be ready",
                   lambda p=proc: " ready." in p.log.read_text(errors="replace"), 60, procs)
    print(f"gunicorn ({args.web_workers} workers) on {base}; "
          + ", ".join(p.name for p in procs[1:]) + f" (concurrency {args.concurrency}) ready", flush=True)
    busy = None
    if args.busy:
        busy = BusyProjects(busy_projects, user=user, period=args.busy_period)
        stack.callback(busy.stop)
        busy.start()
        wait_until(f"{args.busy} other rollouts in flight", lambda: busy.in_flight() >= args.busy, 60, procs)
        print(f"{args.busy} other projects with rollouts in flight (canary 10% -> 50%, "
              f"a new commit every {args.busy_period:.0f} s each)", flush=True)

    # --- rollbacks ------------------------------------------------------------------------
    live_revision = str(revisions[1])
    samples = []
    total = args.warmup + args.rollbacks
    for i in range(total):
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        target = revisions[0] if live_revision == str(revisions[1]) else revisions[1]
        target_revision = str(target)
        t0 = time.perf_counter()
        t0_wall = time.time()
        response = session.post(f"{base}/api/projects/{SLUG}/deployments/{target}/rollback/", timeout=args.timeout)
        t_api = time.perf_counter()
        if response.status_code != 202:
            raise RuntimeError(f"rollback to #{target}: HTTP {response.status_code} {response.text[:500]}")
        number = response.json()["number"]
        event = writes.wait_for(target_revision, after=t0, timeout=args.timeout)
        if event is None:
            d = Deployment.objects.get(project=project, number=number)
            raise RuntimeError(f"rollback #{number} to #{target}: no Service write naming r{target_revision} "
                               f"within {args.timeout}s (state {d.state}: {d.failure_reason})\n{worker.tail()}")
        row = wait_until(
            f"rollback #{number} to finish",
            lambda n=number: Deployment.objects.filter(project=project, number=n, state__in=FINAL)
            .values("state", "failure_reason", "created_at", "started_at", "ready_at", "finished_at").first(),
            args.timeout, procs, interval=0.005,
        )
        if row["state"] != "succeeded":
            raise RuntimeError(f"rollback #{number} to #{target}: {row['state']}: {row['failure_reason']}")
        live_revision = target_revision
        t1, t1_wall = event[0], event[1]
        if row["ready_at"] is None or row["ready_at"] != row["started_at"]:
            warm = False  # a warm rollback goes queued -> switching with ready_at = started_at
        else:
            warm = True
        # This project's requests only (the busy projects' rollouts hit the fake meanwhile).
        seen = [r for r in writes.between(t0, t1) if SLUG in r[3]]
        # The warm check reads the target's Deployment first (a watch of the previous rollback
        # may be polling the other revision meanwhile).
        checks = [r for r in seen if r[3].split("?")[0].endswith(f"/deployments/{SLUG}-r{target_revision}")]
        first_call = (checks[0][0] - t0) * 1000 if checks else float("nan")
        if i >= args.warmup:
            samples.append({
                "first_call": first_call,
                "in_worker": (t1 - t0) * 1000 - first_call,
                "number": number,
                "warm": warm,
                "total": (t1 - t0) * 1000,
                "api": (t_api - t0) * 1000,
                "to_created": (row["created_at"].timestamp() - t0_wall) * 1000,
                "pickup": (row["started_at"] - row["created_at"]).total_seconds() * 1000,
                "engine": (t1_wall - row["started_at"].timestamp()) * 1000,
                "after": (row["finished_at"].timestamp() - t1_wall) * 1000,
                "method": f"{event[3]} {event[4]}",
                "requests": [(round((r[0] - t0) * 1000, 1), round(r[1] * 1000, 1), r[2], r[3]) for r in seen],
            })
        if args.gap:
            time.sleep(args.gap)

    if busy is not None:
        busy.stop()
        results["busy"] = busy.summary()
    for proc in procs:
        text = proc.log.read_text(errors="replace").splitlines()
        bad = [ln for ln in text if "ERROR" in ln or "Traceback" in ln or "WARNING" in ln]
        results.setdefault("log_problems", {})[proc.name] = (len(bad), bad[:3])
    results["samples"] = samples
    results["started"] = started
    results["load"] = (load_start, loadavg())
    results["cold"] = sum(1 for s in samples if not s["warm"])
    return results


results: dict = {}


def report(args) -> None:
    samples = results["samples"]
    if not samples:
        print("no samples")
        return

    def stats(key):
        values = [s[key] for s in samples]
        return (statistics.median(values), percentile(values, 90), percentile(values, 99), max(values))

    def fmt(v):
        return f"{v:.1f}"

    total = stats("total")
    print()
    print(f"### k8s_rollback: warm rollback -> stable Service patch at the API server "
          f"({results['started']:%Y-%m-%d %H:%M} UTC)\n")
    print(f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
          f"{platform.system()} {platform.release()}, Python {platform.python_version()}")
    print(f"- load average (1/5/15 min): {results['load'][0]} at the start, {results['load'][1]} at the end")
    print(f"- {len(samples)} rollbacks measured after {args.warmup} warm-up, alternating #1/#2, "
          f"sequential (next one after the previous succeeded, +{args.gap * 1000:.0f} ms); "
          f"{results['cold']} not warm")
    if args.layout == "shipped":
        layout = (f"the shipped layout (platform/kubernetes): Celery `worker` (all queues) and `switch-worker` "
                  f"(-Q switch), --concurrency {args.concurrency} each, and `beat` (outbox sweep, reconciler "
                  f"every 15 s, liveness, reports)")
    else:
        layout = f"one Celery worker -Q celery,switch --pool {args.pool} --concurrency {args.concurrency}, no beat"
    print(f"- gunicorn {args.web_workers} sync workers (production settings, config/gunicorn.py); {layout}; "
          f"PostgreSQL + Redis on loopback, the measured project's fake API server in the bench process; "
          f"Service write: {samples[-1]['method']}")
    if args.busy:
        busy = results.get("busy", {})
        where = (f"on a second cluster (its own fake API server, another process, nice {args.busy_api_nice})"
                 if args.busy_api == "own"
                 else "on the same fake API server (this process)")
        print(f"- {args.busy} other projects {where} (kubernetes, Gateway HTTPRoute canary 10% -> 50%, 3 s a step) "
              "kept with a rollout "
              f"in flight: {busy.get('requested', '?')} deployments requested during the run, final states "
              f"{busy.get('states', {})}" + (f"; failures {busy['failures']}" if busy.get("failures") else "")
              + (f"; errors {busy['errors']}" if busy.get("errors") else ""))
    else:
        print("- no other project's rollout in flight (--busy 0)")
    print(f"- project: runtime kubernetes, router default (Service), prebuilt image, 1 replica, probe period 0.1 s, "
          f"keep_warm {args.keep_warm} s, watch_seconds 30 (default: after each switch a watch task looks at the live "
          "revision every second, on a worker, until another deployment goes live)")
    print()
    print("| interval (ms) | p50 | p90 | p99 | max |")
    print("|---|---:|---:|---:|---:|")
    rows = [
        ("**request -> Service patch at the API server (t1 - t0)**", "total"),
        ("request -> 202 answered", "api"),
        ("request -> first API server call (the warm check, before the lock)", "first_call"),
        ("first API server call -> Service patch (one transaction: lock, checks, record, switch)", "in_worker"),
        ("request -> deployment row inserted (created_at)", "to_created"),
        ("row inserted -> switching (created_at -> started_at: preemption checks)", "pickup"),
        ("switching -> Service patch (started_at -> t1)", "engine"),
        ("Service patch -> succeeded (finished_at)", "after"),
    ]
    for label, key in rows:
        print(f"| {label} | " + " | ".join(fmt(v) for v in stats(key)) + " |")
    print()
    for name, (count, first) in results.get("log_problems", {}).items():
        print(f"{name} log: {count} warning/error line(s)" + "".join(f"\n    {ln[:200]}" for ln in first))
    counts = [len(s["requests"]) for s in samples]
    answer = [r[1] for s in samples for r in s["requests"]]
    print(f"API server requests per rollback up to the patch: median {statistics.median(counts):.0f}; "
          f"the fake answered them in p50 {statistics.median(answer):.1f} ms, max {max(answer):.1f} ms. "
          "Those of the median rollback (ms after t0, ms to answer):\n")
    median_sample = sorted(samples, key=lambda s: s["total"])[len(samples) // 2]
    for at, took, method, path in median_sample["requests"]:
        print(f"    +{at:6.1f}  {took:5.1f}  {method} {path}")
    print(f"    +{median_sample['total']:6.1f}         (t1)\n")
    verdict = "meets" if total[2] < 100 else "misses"
    print(f"p99 {total[2]:.1f} ms: {verdict} the issue's target (p99 under 100 ms).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollbacks", type=int, default=200, help="measured rollbacks")
    parser.add_argument("--warmup", type=int, default=6, help="rollbacks before measuring (not counted)")
    parser.add_argument("--layout", default="shipped", choices=["shipped", "single"],
                        help="shipped (default, the documented figure): worker + switch-worker + beat as "
                             "platform/kubernetes runs them; single: one worker -Q celery,switch, no beat")
    parser.add_argument("--busy", type=int, default=4,
                        help="other projects kept with a rollout in flight (0: none)")
    parser.add_argument("--busy-api", default="own", choices=["own", "shared"],
                        help="own (default): the other projects run on a second cluster whose fake API server "
                             "is a process of its own; shared: on the measured project's fake, in this process")
    parser.add_argument("--busy-api-nice", type=int, default=19,
                        help="nice increment of the other projects' fake API server (0: none)")
    parser.add_argument("--busy-period", type=float, default=8.0,
                        help="seconds after which a busy project's rollout is superseded by a new commit")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes (or threads) per worker")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"],
                        help="Celery pool (--layout single)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between one rollback's success and the next")
    parser.add_argument("--keep-warm", type=int, default=3600, help="project keep_warm_seconds")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds one rollback may take")
    parser.add_argument("--budget", type=int, default=600, help="seconds the whole run may take")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/switchback_k8sbench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--keep-database", action="store_true", help="leave the database for inspection")
    args = parser.parse_args()

    def over_budget(signum, frame):
        raise BudgetExceeded(f"the run exceeded its budget of {args.budget}s")

    signal.signal(signal.SIGALRM, over_budget)
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.alarm(args.budget)
    failed = False
    try:
        with contextlib.ExitStack() as stack:
            run(args, stack)
            signal.alarm(0)
            signal.alarm(60)  # the clean-up is bounded too
    except (Exception, KeyboardInterrupt) as exc:
        failed = True
        print(f"FAILED: {exc.__class__.__name__}: {exc}", file=sys.stderr)
    finally:
        signal.alarm(0)
    if results.get("leftover"):
        print(f"LEFT BEHIND: processes of {', '.join(results['leftover'])}", file=sys.stderr)
        failed = True
    else:
        print("clean-up: gunicorn and the Celery processes stopped, no process of theirs left; broker db flushed"
              + ("" if args.keep_database else ", database dropped"), flush=True)
    if results.get("samples"):
        report(args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
