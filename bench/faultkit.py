"""The fault suite's moving parts, shared by bench/faults.py and tests/faults/.

A whole platform (`manage.py up` on PostgreSQL and a private redis-server, its own var
folder), the sample app (examples/hello) under constant, bounded load on loopback through HAProxy, and
the faults: kill -9 of a supervised child, Redis stopped, `up` stopped and started again,
HAProxy killed.  `Platform.agree()` says whether PostgreSQL, HAProxy's routes and the
containers agree on what serves.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("SWITCHBACK_FAULTS_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "fault-suite-webhook-secret"
FINAL = {"succeeded", "failed", "cancelled", "superseded"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A private redis-server on a free loopback port, in the foreground (we own its pid)."""

    def __init__(self, directory: Path, *, appendonly: bool = True):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # Append-only by default, as docker-compose runs it: queued tasks survive a restart.
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "yes" if self.appendonly else "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, 10, "redis-server", 0.05)

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@dataclass
class Load:
    """Constant, bounded load on the app through HAProxy: `rate` GETs per second over a few
    threads, one connection per request (what a browser's new visitor does)."""

    port: int
    host: str
    path: str = "/version"
    rate: float = 40.0
    threads: int = 4
    ok: int = 0
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        interval = self.threads / self.rate
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(interval, i * interval / self.threads), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(15)

    def _run(self, interval: float, offset: float) -> None:
        next_at = time.monotonic() + offset
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += interval
            error = self._one()
            with self._lock:
                if error is None:
                    self.ok += 1
                else:
                    self.failures.append((time.monotonic(), error))

    def _one(self) -> str | None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.settimeout(10)
                s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n".encode())
                head = b""
                while b"\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        return "connection closed without an answer"
                    head += chunk
                status = head.split(b" ", 2)[1].decode()
                return None if status.startswith("2") else f"HTTP {status}"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    def mark(self) -> tuple[int, int]:
        with self._lock:
            return self.ok, len(self.failures)

    def failed_since(self, mark: tuple[int, int]) -> list[tuple[float, str]]:
        with self._lock:
            return self.failures[mark[1]:]


def error_window(failures: list[tuple[float, str]]) -> float:
    """Seconds between the first and the last failed request (0 when none or one failed)."""
    return failures[-1][0] - failures[0][0] if len(failures) > 1 else 0.0


class Platform:
    """`manage.py up` with its own database, Redis and var folder, and one app."""

    def __init__(self, workdir: Path, *, database: str):
        # The app's slug is unique to this run: installations that predate installation ids
        # (other checkouts on a shared engine) remove every container of a slug they know.
        self.slug = f"faults-{uuid.uuid4().hex[:6]}"
        self.dir = Path(workdir)
        self.var = self.dir / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.redis = RedisServer(self.dir / "redis")
        self.port, self.apps_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        db_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
        self.dsn = db_url
        dropped = ("DOCKER_HOST", "SWITCHBACK_APPS_BIND", "SWITCHBACK_SINGLE_HOST_DIR", "PYTEST_CURRENT_TEST")
        self.env = {k: v for k, v in os.environ.items() if k not in dropped}
        self.env.update(DATABASE_URL=db_url.replace("postgresql://", "postgres://"), REDIS_URL=self.redis.url,
                        SWITCHBACK_VAR_DIR=str(self.var), DJANGO_SETTINGS_MODULE="config.settings.local",
                        PYTHONUNBUFFERED="1", OUTBOX_STALE_SECONDS="3",
                        # The app's repository is a local folder: allow it as a file:// root.
                        SWITCHBACK_ALLOWED_SOURCE_ROOTS=str(self.dir))

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.redis.start()

    def start(self, *, demo: bool = False, timeout: float = 180) -> None:
        self.starts += 1
        log = open(self.var / f"up-{self.starts}.log", "wb")  # noqa: SIM115 - the child writes it
        argv = [sys.executable, "manage.py", "up", "--port", str(self.port), "--apps-port", str(self.apps_port)]
        self.proc = subprocess.Popen(argv + (["--demo"] if demo else []), cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(lambda: self._up() or self._exited(), timeout, "manage.py up", 0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"manage.py up exited: {self.log()[-3000:]}")

    def _exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def _up(self) -> bool:
        if "Switchback is up" not in self.log():
            return False
        with contextlib.suppress(requests.RequestException):
            return self.session.get(f"{self.base}/readyz", timeout=2).status_code == 200
        return False

    def log(self) -> str:
        """`up`'s console, then its own log and supervisord's (var/log/: since issue 15 the
        console carries only the start-up block, deployments and one line per restart)."""
        text = (self.var / f"up-{self.starts}.log").read_text(errors="replace")
        for name in ("up.log", "supervisord.log"):
            with contextlib.suppress(FileNotFoundError):
                text += (self.var / "log" / name).read_text(errors="replace")
        return text

    def stop(self, timeout: float = 90) -> None:
        """SIGTERM to `up`, as a service manager would (the apps keep serving)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def destroy(self) -> None:
        """Stop everything of this run: the platform, the apps (apps_stop), Redis, the database."""
        with contextlib.suppress(Exception):
            self.stop()
        with contextlib.suppress(Exception):
            subprocess.run([sys.executable, "manage.py", "apps_stop"], cwd=ROOT, env=self.env, timeout=120,
                           capture_output=True)
        for pid in self.haproxy_pids():  # apps_stop could not (its engine or database failed)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.redis.stop()
        with contextlib.suppress(Exception), psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    # -- the control plane's processes ---------------------------------------------------------

    def ctl(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c",
                               str(self.var / "supervisord.conf"), *args],
                              capture_output=True, text=True, timeout=30).stdout.strip()

    def pids(self) -> dict[str, int]:
        """program -> pid of every RUNNING program supervisord runs."""
        found = {}
        for line in self.ctl("status").splitlines():
            m = re.match(r"^(\S+)\s+RUNNING\s+pid (\d+)", line)
            if m:
                found[m[1]] = int(m[2])
        return found

    def kill(self, program: str) -> int:
        pid = self.pids()[program]
        os.kill(pid, signal.SIGKILL)
        return pid

    def restarted(self, program: str, old_pid: int) -> bool:
        pid = self.pids().get(program)
        return pid is not None and pid != old_pid

    def haproxy_pids(self) -> list[int]:
        return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _cmd_has(p, self.var, b"haproxy")]

    # -- the app --------------------------------------------------------------------------

    def app(self, path: str = "/version") -> tuple[int, str]:
        with contextlib.suppress(requests.RequestException):
            r = requests.get(f"http://127.0.0.1:{self.apps_port}{path}", headers={"Host": self.host}, timeout=5)
            return r.status_code, r.text
        return 0, ""

    @property
    def host(self) -> str:
        return f"{self.slug}.localhost"

    @property
    def repo(self) -> Path:
        return self.dir / "app"

    def app_create(self) -> int:
        """A project of examples/hello under this run's slug (the API, as a user would);
        deploys its first commit and returns the deployment's number."""
        out = subprocess.run([sys.executable, "manage.py", "token_create", "admin"], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, check=True, timeout=60).stdout
        self.session.headers["Authorization"] = "Token " + out.strip().splitlines()[-1]
        shutil.copytree(ROOT / "examples" / "hello", self.repo)
        subprocess.run(["git", "-C", str(self.repo), "init", "-q", "-b", "main"], check=True)
        sha = self.commit("first")
        r = self.session.post(f"{self.base}/api/projects/", timeout=30, json={
            "name": "Faults", "slug": self.slug, "repository": f"faults/{self.slug}", "production_branch": "main",
            "clone_url": f"file://{self.repo}", "webhook_secret": SECRET})
        if r.status_code >= 400:
            raise RuntimeError(f"creating the project: {r.status_code} {r.text[:500]}")
        return self.deploy(sha)

    def commit(self, note: str) -> str:
        """A new commit in the app's repository."""
        (self.repo / "NOTE").write_text(note)
        git = ["git", "-C", str(self.repo), "-c", "user.name=Fault Suite", "-c", "user.email=faults@localhost"]
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", note], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    def deploy(self, sha: str) -> int:
        r = self.session.post(f"{self.base}/api/projects/{self.slug}/deployments/", json={"sha": sha}, timeout=30)
        r.raise_for_status()
        return r.json()["number"]

    def deliver_push(self, sha: str) -> int:
        """A signed push to main, as GitHub sends it; returns the HTTP status (0: refused)."""
        body = json.dumps({"ref": "refs/heads/main", "after": sha, "repository": {"full_name": f"faults/{self.slug}"},
                           "head_commit": {"id": sha, "message": f"merge {sha[:7]}", "author": {"name": "mona"}},
                           "sender": {"login": "mona"}}).encode()
        headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
                   "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/fault-suite"}
        try:
            return requests.post(f"{self.base}/webhooks/github/", data=body, headers=headers, timeout=10).status_code
        except requests.RequestException:
            return 0

    # -- agreement: database, routes, containers -------------------------------------------

    def db(self, sql: str, *args) -> list[tuple]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, args).fetchall()

    def deployments_of(self, sha: str) -> list[tuple[int, str]]:
        return self.db("SELECT d.number, d.state FROM deployments_deployment d JOIN deployments_project p "
                       "ON d.project_id = p.id WHERE p.slug = %s AND d.commit_sha = %s ORDER BY d.number",
                       self.slug, sha)

    def live(self) -> tuple[int, str] | None:
        rows = self.db("SELECT d.number, d.commit_sha FROM deployments_project p JOIN deployments_deployment d "
                       "ON p.live_deployment_id = d.id WHERE p.slug = %s", self.slug)
        return rows[0] if rows else None

    def rolling(self) -> bool:
        return bool(self.db("SELECT 1 FROM deployments_deployment WHERE state NOT IN "
                            "('succeeded', 'failed', 'cancelled', 'superseded')"))

    def routes(self) -> dict[str, int]:
        """HAProxy's servers of the app -> weight (live, from its Runtime API)."""
        sock = self.var / "single-host" / "haproxy" / "admin.sock"
        backend = next((b for b in _haproxy(sock, "show backend").split() if b.endswith(f"_{self.slug}")), None)
        if backend is None:
            return {}
        out = _haproxy(sock, f"show servers state {backend}")
        weights = {}
        header = None
        for line in out.splitlines():
            if line.startswith("# "):
                header = line[2:].split()
            elif header and len(line.split()) >= len(header):
                row = dict(zip(header, line.split(), strict=False))
                admin = int(row["srv_admin_state"])
                weights[row["srv_name"]] = 0 if admin & 0x09 else int(row["srv_uweight"])
        return weights

    def containers(self) -> dict[str, tuple[str, str]]:
        """name -> (id, status) of this instance's containers of the app."""
        instance = self.db("SELECT instance_id FROM deployments_installation")[0][0]
        out = subprocess.run(["podman", "ps", "-a", "--format", "json", "--filter",
                              f"label=switchback.instance={instance}"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        return {c["Names"][0]: (c["Id"], c.get("State", "")) for c in json.loads(out or "[]")}

    def agree(self) -> str:
        """'' when PostgreSQL, HAProxy and the containers agree on what serves the app; else why not."""
        live = self.live()
        if live is None:
            return "no live deployment"
        if self.rolling():
            return "a rollout is in flight"
        number = live[0]
        routed = {n for n, w in self.routes().items() if w > 0}
        if not routed or any(not n.startswith(f"r{number}-") for n in routed):
            return f"HAProxy routes {sorted(routed)}, the database says r{number}"
        running = {n for n, (_id, state) in self.containers().items() if state == "running"}
        if not any(n.endswith(f"-{self.slug}-{number}-0") for n in running):
            return f"no running container of revision {number}: {sorted(running)}"
        status, body = self.app()
        if status != 200 or body.strip() != live[1]:
            return f"the app answers {status} {body.strip()[:50]!r}, the database says {live[1][:7]}"
        return ""


def _haproxy(sock: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def _cmd_has(proc: Path, var: Path, needle: bytes) -> bool:
    with contextlib.suppress(OSError):
        cmd = (proc / "cmdline").read_bytes()
        return needle in cmd.split(b"\0")[0] and str(var).encode() in cmd
    return False


def missing_tools() -> list[str]:
    return [t for t in ("podman", "haproxy", "redis-server", "git")
            if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]


# --- the faults ------------------------------------------------------------------------------


@dataclass
class FaultResult:
    fault: str
    requests: int  # app requests sent through HAProxy during the fault and its recovery
    failed: int
    error_seconds: float  # first to last failed request
    converge_seconds: float  # fault injected -> database, routes and containers agree again
    note: str = ""
    failures: list = field(default_factory=list)


def _result(fault: str, load: Load, mark: tuple[int, int], t0: float, note: str = "") -> FaultResult:
    converge = time.monotonic() - t0
    ok, _ = load.mark()
    failures = load.failed_since(mark)
    return FaultResult(fault, ok - mark[0] + len(failures), len(failures), error_window(failures), converge, note,
                       failures[:5])


def _final_state(p: Platform, sha: str) -> str:
    rows = p.deployments_of(sha)
    return rows[-1][1] if rows and rows[-1][1] in FINAL else ""


def fault_worker_killed(p: Platform, load: Load) -> FaultResult:
    """kill -9 of the Celery worker's master while a rollout is in flight."""
    sha = p.commit(f"worker-killed {uuid.uuid4().hex[:6]}")
    number = p.deploy(sha)
    wait_until(lambda: p.deployments_of(sha) and p.deployments_of(sha)[-1][1] not in ("queued",), 60,
               "the rollout to start", 0.05)
    mark, t0 = load.mark(), time.monotonic()
    old = p.kill("worker")
    wait_until(lambda: p.restarted("worker", old), 60, "supervisord to restart the worker", 0.2)
    state = wait_until(lambda: _final_state(p, sha), 240, f"rollout #{number} to end", 0.25)
    wait_until(lambda: not p.agree(), 60, "database, routes and containers to agree", 0.25)
    return _result("kill -9 worker master (rollout in flight)", load, mark, t0, f"rollout #{number} {state}")


def fault_web_and_beat_killed(p: Platform, load: Load) -> FaultResult:
    mark, t0 = load.mark(), time.monotonic()
    old = {name: p.kill(name) for name in ("web", "beat")}
    wait_until(lambda: all(p.restarted(n, pid) for n, pid in old.items()), 60, "web and beat to restart", 0.2)
    wait_until(lambda: p._up(), 60, "the web server to answer /readyz", 0.2)
    wait_until(lambda: not p.agree(), 60, "database, routes and containers to agree", 0.25)
    return _result("kill -9 gunicorn master and beat", load, mark, t0)


def fault_redis_stopped(p: Platform, load: Load, *, seconds: float = 20.0) -> FaultResult:
    """Redis stopped while two signed merges arrive; both answered 202, each deployed once."""
    shas = [p.commit(f"redis-outage {i} {uuid.uuid4().hex[:6]}") for i in range(2)]
    pids = p.pids()
    mark, t0 = load.mark(), time.monotonic()
    p.redis.stop()
    statuses = []
    for i, sha in enumerate(shas):
        time.sleep(max(0.0, t0 + (i + 1) * seconds / 3 - time.monotonic()))
        statuses.append(p.deliver_push(sha))
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))
    p.redis.start()
    wait_until(lambda: _final_state(p, shas[-1]), 240, "the last merge to be deployed", 0.25)
    wait_until(lambda: not p.agree(), 60, "database, routes and containers to agree", 0.25)
    rows = {sha[:7]: p.deployments_of(sha) for sha in shas}
    same = p.pids() == pids and p.proc is not None and p.proc.poll() is None
    note = (f"webhooks answered {statuses}; deployments per merge {[len(r) for r in rows.values()]} "
            f"({', '.join(f'{s}: {r[-1][1]}' for s, r in rows.items() if r)}); "
            f"platform processes {'unchanged' if same else 'CHANGED'}")
    result = _result(f"Redis stopped {seconds:.0f} s, signed merges arriving", load, mark, t0, note)
    result.statuses, result.rows, result.same_processes = statuses, rows, same  # for the tests
    return result


def fault_up_restarted(p: Platform, load: Load) -> FaultResult:
    """SIGTERM to `up`, then `up` again: the apps never stop; the live revision is adopted."""
    before = p.containers()
    mark, t0 = load.mark(), time.monotonic()
    p.stop()
    stopped = time.monotonic() - t0
    serving = p.app()[0] == 200
    p.start()
    wait_until(lambda: not p.agree(), 90, "database, routes and containers to agree", 0.25)
    after = p.containers()
    adopted = "adopted revision" in p.log()
    same = {n: c[0] for n, c in before.items()} == {n: c[0] for n, c in after.items()}
    note = (f"up stopped in {stopped:.1f} s; app served meanwhile: {serving}; "
            f"live revision adopted: {adopted}; containers unchanged: {same}")
    result = _result("manage.py up SIGTERM, then started again", load, mark, t0, note)
    result.adopted, result.same_containers, result.served_while_down = adopted, same, serving
    return result


def fault_haproxy_killed(p: Platform, load: Load) -> FaultResult:
    mark, t0 = load.mark(), time.monotonic()
    for pid in p.haproxy_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: p.app()[0] == 200, 60, "HAProxy to serve again", 0.02)
    wait_until(lambda: not p.agree(), 60, "database, routes and containers to agree", 0.25)
    logged = "HAProxy was not running; started it again" in p.log()
    result = _result("HAProxy killed (kill -9, master and worker)", load, mark, t0, f"restart logged: {logged}")
    result.logged = logged
    return result


def fault_host_rebooted(p: Platform, load: Load) -> FaultResult:
    """What a host reboot leaves behind: `up`, HAProxy and every app container stopped (the
    engine restarts `unless-stopped` containers only while it runs; at boot nothing starts
    them).  `up` started again (its systemd unit, platform/systemd/) starts HAProxy from the
    saved routes and the live revision's stopped containers: the same containers serve again.
    The requests sent while the host is "down" fail by nature; the figure is the time from
    `up`'s start to the app serving."""
    before = p.containers()
    p.stop()
    for pid in p.haproxy_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not p.haproxy_pids(), 30, "HAProxy to stop", 0.1)
    subprocess.run(["podman", "stop", "--time", "2", *[c[0] for c in before.values()]],
                   capture_output=True, timeout=120, check=True)
    down = p.app()[0]
    mark, t0 = load.mark(), time.monotonic()
    p.start()
    wait_until(lambda: p.app()[0] == 200, 120, "the app to serve after the reboot", 0.05)
    serving = time.monotonic() - t0
    wait_until(lambda: not p.agree(), 90, "database, routes and containers to agree", 0.25)
    after = p.containers()
    same = {n: c[0] for n, c in before.items()} == {n: c[0] for n, c in after.items()}
    note = (f"app answered {down} while down; serving {serving:.1f} s after up started; "
            f"same containers started again: {same}")
    result = _result("host reboot (up, HAProxy and the apps stopped; up started)", load, mark, t0, note)
    result.same_containers, result.served_while_down = same, down == 200
    return result
