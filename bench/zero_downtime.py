"""Zero downtime under load: deploys and rollbacks through the real platform, and a naive baseline.

Starts Switchback like a user would (`manage.py up`, PostgreSQL and Redis), creates a
project from a local git repository made of examples/hello (one commit per release), then,
under constant load through HAProxy (wrk at a fixed rate), deploys new commits and rolls
back to warm earlier deployments through the REST API.  It reports failed requests, the
rollback switch latency (API request -> first response served by the target revision, seen
by a fast poller of /version) and the platform's own overhead per deploy.  In the same run,
a naive stop-then-start switch of a second app, under the same load, is the baseline.

    .venv/bin/python bench/zero_downtime.py                  # about 3-4 minutes
    .venv/bin/python bench/zero_downtime.py --rate 600 --seconds 60 --deploys 5 --rollbacks 10

Needs PostgreSQL (trust) and Redis on 127.0.0.1, podman, haproxy and wrk
(scripts/install-system-deps.sh).  It drops and recreates the database `switchback_zd`,
flushes Redis db 13, works in a temporary folder, touches only loopback, and stops the
platform with SIGTERM at the end, checking that nothing of this run is left behind.
Prints markdown tables; copy them with the date and machine into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from common import free_port  # bench/common.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
DB_NAME = "switchback_zd"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/13"
FINAL = {"succeeded", "failed", "cancelled", "superseded"}

# A constant-rate request schedule inside wrk (Debian's wrk has no -R): each thread hands out
# send slots `interval` ms apart to its connections through wrk's delay() hook; a connection
# that is late takes its slot at once (the schedule catches up, it does not slow down).
# Counts 2xx and non-2xx per thread; done() prints one JSON line with the totals.
WRK_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } sb_timespec; int clock_gettime(int, sb_timespec *); ]]
local ts = ffi.new("sb_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

local interval = 0
local next_at = nil
ok = 0
non2xx = 0
statuses = ""

function init(args)
  interval = 1000.0 / tonumber(args[1])
end

function delay()
  local now = now_ms()
  if next_at == nil then next_at = now + math.random() * interval end
  local slot = next_at
  next_at = next_at + interval
  local d = slot - now
  if d <= 0 then return 0 end
  return math.floor(d + 0.5)
end

local seen = {}
function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    non2xx = non2xx + 1
    seen[status] = (seen[status] or 0) + 1
    local parts = {}
    for k, v in pairs(seen) do table.insert(parts, k .. "=" .. v) end
    statuses = table.concat(parts, ",")
  end
end

function done(summary, latency, requests)
  local tok, tbad, st = 0, 0, {}
  for _, t in ipairs(threads) do
    tok = tok + t:get("ok")
    tbad = tbad + t:get("non2xx")
    local s = t:get("statuses")
    if s and s ~= "" then table.insert(st, s) end
  end
  local e = summary.errors
  io.write(string.format(
    'SBJSON {"requests": %d, "duration_us": %d, "ok": %d, "non2xx": %d, "statuses": "%s", ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status_errors": %d, ' ..
    '"lat_p50_us": %d, "lat_p99_us": %d, "lat_max_us": %d}\n',
    summary.requests, summary.duration, tok, tbad, table.concat(st, ";"),
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# --- small helpers ---------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of fewer than 100 samples is the maximum)."""
    values = sorted(values)
    if not values:
        return float("nan")
    rank = max(1, -(-len(values) * q // 100))  # ceil
    return values[int(rank) - 1]


def ts(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Switchback Bench", "-c", "user.email=bench@localhost", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


# examples/hello's server forks a shell per request (busybox nc -e): about 300 req/s on two
# shared cores, less than the load this benchmark needs.  --app httpd (the default) serves the
# same routes from the same image with busybox httpd, which forks but does not exec per request.
HTTPD_SERVE = """#!/bin/sh
# examples/hello's routes served by busybox httpd (a fork per connection, no exec).
www=/tmp/www
mkdir -p "$www"
commit="${SWITCHBACK_COMMIT:-$(cat /app/built-commit 2>/dev/null)}"
echo "$commit" > "$www/version"
echo ok > "$www/healthz"
echo ready > "$www/readyz"
echo "hello from revision ${SWITCHBACK_REVISION:-?} (commit $commit)" > "$www/index.html"
# The shell stays PID 1 so that SIGTERM stops the container at once.
trap 'kill "$child" 2>/dev/null; exit 0' TERM INT
httpd -f -p "${PORT:-8000}" -h "$www" &
child=$!
wait "$child"
"""


def make_repo(path: Path, releases: int, app: str) -> list[str]:
    """examples/hello as a git repository with one commit per release; returns the shas."""
    shutil.copytree(ROOT / "examples" / "hello", path)
    if app == "httpd":
        (path / "app" / "serve").write_text(HTTPD_SERVE)
    git(path, "init", "-q", "-b", "main")
    files = [path / "app" / "serve", path / "app" / "handle"]
    originals = [f.read_text() for f in files]
    shas = []
    for n in range(1, releases + 1):
        # A visible change per release: the greeting names it.
        for f, original in zip(files, originals, strict=True):
            f.write_text(original.replace("hello from revision", f"hello (release {n}) from revision"))
        git(path, "add", "-A")
        git(path, "commit", "-qm", f"Release {n}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return shas


def reset_stores() -> None:
    import psycopg
    import redis

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(REDIS_URL).flushdb()


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                if text in cmd and alive(int(entry)):
                    found.append(f"{entry}: {cmd[:160]}")
    return found


def podman_names(prefix: str) -> list[str]:
    """'name state' of every container whose name starts with prefix (state: running, exited...)."""
    out = subprocess.run(
        ["podman", "ps", "-a", "--format", "json"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    found = []
    for c in json.loads(out or "[]"):
        for name in c.get("Names") or []:
            if name.startswith(prefix):
                found.append(f"{name} {c.get('State', '')}")
    return found


# --- the platform ----------------------------------------------------------------------------


class Platform:
    def __init__(self, var: Path, port: int, apps_port: int):
        self.var, self.port, self.apps_port = var, port, apps_port
        self.base = f"http://127.0.0.1:{port}"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DOCKER_HOST", "SWITCHBACK_APPS_BIND", "SWITCHBACK_SINGLE_HOST_DIR")
        }
        self.env.update(
            {
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
                "REDIS_URL": REDIS_URL,
                "SWITCHBACK_VAR_DIR": str(var),
                # The bench's repository is a local folder beside var/ (file:// is allowed only there).
                "SWITCHBACK_ALLOWED_SOURCE_ROOTS": str(var.parent / "repo"),
                "SECRET_KEY": secrets.token_urlsafe(50),
        "SWITCHBACK_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "DJANGO_SETTINGS_MODULE": "config.settings.local",
                "DEBUG": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()

    def start(self, timeout: float = 120) -> None:
        self.logfile = open(self.var / "up.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PYTHON, "manage.py", "up", "--port", str(self.port), "--apps-port", str(self.apps_port)],
            cwd=ROOT,
            env=self.env,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"manage.py up exited ({self.proc.returncode}); see {self.var / 'up.log'}")
            with contextlib.suppress(requests.RequestException):
                if (
                    self.session.get(f"{self.base}/readyz", timeout=2).status_code == 200
                    and b"Switchback is up" in (self.var / "up.log").read_bytes()
                ):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"/readyz not ready within {timeout}s; see {self.var / 'up.log'}")

    def create_token(self) -> None:
        out = subprocess.run(
            [PYTHON, "manage.py", "token_create", "admin"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        token = re.search(r"\bsb_[0-9a-f]{64}\b", out)
        if not token:
            raise RuntimeError(f"no token in: {out!r}")
        self.session.headers["Authorization"] = f"Token {token.group(0)}"

    def api(self, method: str, path: str, **kwargs) -> dict:
        r = self.session.request(method, f"{self.base}/api{path}", timeout=30, **kwargs)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json()

    def wait_final(self, slug: str, number: int, timeout: float = 120, poll: float = 0.05) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.api("GET", f"/projects/{slug}/deployments/{number}/")
            if d["state"] in FINAL:
                return d
            time.sleep(poll)
        raise RuntimeError(f"deployment #{number} not finished within {timeout}s (state {d['state']})")

    def stop(self, timeout: float = 90) -> float:
        """SIGTERM, as Ctrl-C would; returns how long `up` took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log("manage.py up did not exit after SIGTERM; killing its process group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        return time.monotonic() - t0


# --- load and observation --------------------------------------------------------------------


class Wrk:
    """wrk at a fixed rate (see WRK_LUA), stopped by SIGINT or its own duration."""

    def __init__(self, url: str, host: str, *, rate: int, threads: int, connections: int, seconds: int, script: Path):
        per_thread = rate / threads
        self.proc = subprocess.Popen(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "10s",
                "-H",
                f"Host: {host}",
                "-s",
                str(script),
                url,
                "--",
                str(per_thread),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.started = time.monotonic()

    def stop(self) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # wrk prints its summary and done() output
        out, _ = self.proc.communicate(timeout=30)
        elapsed = time.monotonic() - self.started
        line = next((ln for ln in out.splitlines() if ln.startswith("SBJSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no summary:\n{out}")
        result = json.loads(line[len("SBJSON ") :])
        result["seconds"] = result["duration_us"] / 1e6 or elapsed
        result["rate"] = result["requests"] / result["seconds"]
        result["socket_errors"] = result["connect"] + result["read"] + result["write"] + result["timeout"]
        result["raw"] = out
        return result


@dataclass
class Sample:
    sent: float
    received: float
    status: int  # 0: connection error
    body: str


@dataclass
class Poller:
    """GET /version through HAProxy from `workers` threads, each every `period` seconds.

    Several staggered threads, each on its own keep-alive connection: one slow request
    (a SYN retransmitted after 1 s, a CPU stall) does not blind the poller.
    """

    host: str
    port: int
    workers: int = 4
    period: float = 0.02
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.workers)]
        self.lock = threading.Lock()

    def start(self) -> Poller:
        self._t0 = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    def _run(self, index: int) -> None:
        import http.client

        conn = None
        # Each thread keeps its own slot of a fixed schedule (thread i at t0 + i*period/workers
        # + k*period), so together they poll every period/workers.  Waiting "a period after
        # my last answer" instead let the threads drift into step with each other: the gaps
        # between polls reached 12 ms (against 5), and that blind time was counted as rollback
        # latency (stop 20, docs/benchmarks.md).  A slot missed (a slow answer) is skipped.
        first = self._t0 + index * self.period / self.workers
        slot = 0
        while not self._stop.wait(max(0.0, first + slot * self.period - time.monotonic())):
            sent = time.monotonic()
            status, body = 0, ""
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/version", headers={"Host": self.host})
                resp = conn.getresponse()
                status, body = resp.status, resp.read().decode(errors="replace").strip()
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            received = time.monotonic()
            with self.lock:
                self.samples.append(Sample(sent, received, status, body))
            slot = max(slot + 1, math.ceil((received - first) / self.period))

    def first_served_by(self, sha: str, after: float, timeout: float) -> Sample | None:
        """The earliest-received response from `sha` among requests sent after `after`.

        Samples are appended as they arrive, so once one match exists no request still in
        flight can be received earlier than it.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                matches = [s for s in self.samples if s.sent >= after and s.status == 200 and s.body == sha]
            if matches:
                return min(matches, key=lambda s: s.received)
            time.sleep(0.005)
        return None

    def since(self, start: float) -> list[Sample]:
        with self.lock:
            return [s for s in self.samples if s.sent >= start]


def haproxy_backend_stats(var: Path, project: str) -> dict[str, int]:
    """Counters of the project's backend: failures HAProxy hid from clients by retrying."""
    from deployments.runtimes.single_host.haproxy_api import RuntimeAPI

    api = RuntimeAPI(str(var / "single-host" / "haproxy" / "admin.sock"))
    for row in api.show_stat():
        if row.get("pxname") == f"be_{project}" and row.get("svname") == "BACKEND":
            return {k: int(row.get(k) or 0) for k in ("stot", "econ", "eresp", "wretr", "wredis", "hrsp_5xx", "qmax")}
    return {}


# --- the benchmark ---------------------------------------------------------------------------


def overhead_of(d: dict) -> dict:
    """Split a deployment's time from its API timestamps and events (see FORMULA)."""
    started_event = next(
        (ts(e["created_at"]) for e in d["events"] if e["message"].startswith("Started revision")), None
    )
    created, started, built = ts(d["created_at"]), ts(d["started_at"]), ts(d["built_at"])
    ready, live = ts(d["ready_at"]), ts(d["live_at"])
    built = built or started  # a rollback has no build
    # A warm rollback starts nothing: the engine goes from queued straight to switching.
    started_event = started_event if started_event is not None else built
    total = live - created
    build = built - started
    boot = ready - started_event
    return {
        "number": d["number"],
        "trigger": d["trigger"],
        "total": total,
        "queue": started - created,
        "build": build,
        "start": started_event - built,
        "boot": boot,
        "switch": live - ready,
        "overhead": total - build - boot,
    }


FORMULA = """\
overhead = (live_at - created_at) - (built_at - started_at) - (ready_at - t_started)
         = queue (created_at -> started_at: API accepted -> a worker begins)
         + start (built_at -> t_started: containers created and started, registered in HAProxy at weight 0)
         + switch (ready_at -> live_at: HAProxy weights, history written)
where t_started is the time of the deployment's "Started revision" event; build (fetch + image
build) and boot (t_started -> ready_at: the app starting until its startup and readiness probes
pass, probe period included) are excluded.  'strict' also charges the probe wait to the
platform: it subtracts only the app's own boot, measured separately (container start -> first
200 on /readyz, polled every 5 ms, from the moment the engine's start call returns)."""


def measure_app_boot(engine_url: str, image: str, runs: int = 3) -> tuple[float, float]:
    """Medians of (engine start call, then app boot: start returned -> first 200 on /readyz)."""
    import docker

    client = docker.DockerClient(base_url=engine_url, version="auto", timeout=60)
    times, calls = [], []
    try:
        for i in range(runs):
            port = free_port()
            container = client.containers.create(
                image,
                name=f"zdboot-{os.getpid()}-{i}",
                ports={"8000/tcp": ("127.0.0.1", port)},
                environment={"PORT": "8000", "SWITCHBACK_COMMIT": "boot-test"},
            )
            try:
                t_call = time.monotonic()
                container.start()
                t0 = time.monotonic()
                calls.append(t0 - t_call)
                while time.monotonic() - t0 < 20:
                    with contextlib.suppress(requests.RequestException):
                        if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                            break
                    time.sleep(0.005)
                times.append(time.monotonic() - t0)
            finally:
                container.remove(force=True)
    finally:
        client.close()
    return statistics.median(calls), statistics.median(times)


def run(args) -> int:
    start_all = time.monotonic()
    loadavg = [Path("/proc/loadavg").read_text().split()[0]]
    tmp = Path(tempfile.mkdtemp(prefix="sb-zd-"))
    var = tmp / "var"
    var.mkdir()
    slug = f"zd{secrets.token_hex(3)}"
    naive_slug = f"{slug}-naive"
    releases = 1 + args.deploys
    shas = make_repo(tmp / "repo", releases, args.app)
    reset_stores()
    port, apps_port = free_port(), free_port()
    plat = Platform(var, port, apps_port)
    script = tmp / "rate.lua"
    script.write_text(WRK_LUA)
    apps_url = f"http://127.0.0.1:{apps_port}/"
    results: dict = {"slug": slug, "tmp": str(tmp)}
    pollers: list[Poller] = []
    wrk: Wrk | None = None
    naive_runtime = None
    naive_instance = f"naive{secrets.token_hex(3)}"
    others_before: list[str] = []
    try:
        log(f"starting the platform (API :{port}, apps :{apps_port}, var {var})")
        plat.start()
        plat.create_token()
        plat.api(
            "POST",
            "/projects/",
            json={
                "name": "Zero downtime bench",
                "slug": slug,
                "repository": "bench/zero-downtime",
                "clone_url": f"file://{tmp / 'repo'}",
                "webhook_secret": secrets.token_hex(16),
                "replicas": args.replicas,
                "probe_period_seconds": 0.2,
                "probe_timeout_seconds": 1.0,
                "probe_failure_threshold": 3,
                "ready_timeout_seconds": 90,
                "drain_seconds": 2.0,
                "keep_warm_seconds": 3600,
                "watch_seconds": 10,
                "keep_images": 50,
            },
        )
        t = time.monotonic()
        first = plat.api("POST", f"/projects/{slug}/deployments/", json={"sha": shas[0]})
        d1 = plat.wait_final(slug, first["number"], timeout=180)
        if d1["state"] != "succeeded":
            raise RuntimeError(f"deploy #1 {d1['state']}: {d1['failure_reason']}")
        log(f"#1 live in {time.monotonic() - t:.1f}s (first build, base image included)")
        host = f"{slug}.localhost"
        r = requests.get(apps_url + "version", headers={"Host": host}, timeout=5)
        assert r.text.strip() == shas[0], r.text
        results["start_call"], results["app_boot"] = measure_app_boot(f"unix://{var / 'podman.sock'}", d1["image"])
        log(
            f"container start call {ms(results['start_call'])}, then app boot (-> /readyz 200) "
            f"{ms(results['app_boot'])} (medians of 3)"
        )

        # --- phase 1: deploys and rollbacks under constant load -------------------------------
        poller = Poller(host, apps_port).start()
        pollers.append(poller)
        wrk = Wrk(
            apps_url,
            host,
            rate=args.rate,
            threads=args.threads,
            connections=args.connections,
            seconds=args.seconds + 240,
            script=script,
        )
        time.sleep(args.warmup)
        live = {"number": d1["number"], "sha": shas[0]}
        deployed = [live]  # deployments that went live (a rollback targets the source)
        deploys, rollbacks, ops = [], [], []
        rollbacks_left = args.rollbacks
        for i in range(args.deploys):
            sha = shas[i + 1]
            t = time.monotonic()
            created = plat.api("POST", f"/projects/{slug}/deployments/", json={"sha": sha})
            d = plat.wait_final(slug, created["number"])
            if d["state"] != "succeeded":
                raise RuntimeError(f"deploy #{d['number']} {d['state']}: {d['failure_reason']}")
            previous, live = live, {"number": d["number"], "sha": sha}
            deployed.append(live)
            deploys.append(d)
            ops.append(f"deploy #{d['number']} ({sha[:7]}) live in {time.monotonic() - t:.2f}s")
            log(ops[-1])
            # Roll back to the revision this deploy replaced, then (if more are wanted) to this one again.
            per_deploy = -(-rollbacks_left // (args.deploys - i))
            targets = [previous, live] * per_deploy
            for target in targets[:per_deploy]:
                time.sleep(args.pause)
                t_req = time.monotonic()
                created = plat.api("POST", f"/projects/{slug}/deployments/{target['number']}/rollback/")
                t_api = time.monotonic()
                rb = plat.wait_final(slug, created["number"])
                t_final = time.monotonic()
                seen = poller.first_served_by(target["sha"], t_req, timeout=30)
                if rb["state"] != "succeeded" or seen is None:
                    raise RuntimeError(
                        f"rollback #{created['number']} to #{target['number']}: {rb['state']} "
                        f"{rb['failure_reason']} (target seen: {seen is not None})"
                    )
                latency = seen.received - t_req
                rollbacks.append(
                    {
                        "number": rb["number"],
                        "to": target["number"],
                        "latency": latency,
                        "api": t_api - t_req,
                        "live_after": t_final - t_req,
                        "detail": rb,
                    }
                )
                live = target
                rollbacks_left -= 1
                ops.append(
                    f"rollback #{rb['number']} to #{target['number']}: first response from target "
                    f"{ms(latency)} after the request (API answered in {ms(t_api - t_req)})"
                )
                log(ops[-1])
            time.sleep(args.pause)
        remaining = args.seconds - (time.monotonic() - wrk.started)
        if remaining > 0:
            log(f"keeping the load on for {remaining:.0f}s more (at least {args.seconds}s in all)")
            time.sleep(remaining)
        time.sleep(1)
        main = wrk.stop()
        wrk = None
        poller.stop()
        results["haproxy"] = haproxy_backend_stats(var, slug)
        # Served by something other than the live revision after each switch settled?
        results.update(main=main, deploys=deploys, rollbacks=rollbacks, ops=ops)
        psamples = poller.samples
        results["poller"] = {"count": len(psamples), "failed": sum(1 for s in psamples if s.status != 200)}
        log(
            f"phase 1: {main['requests']} requests at {main['rate']:.0f}/s, non-2xx {main['non2xx']}, "
            f"socket errors {main['socket_errors']}"
        )

        # --- phase 2: the naive baseline, same load, another app ---------------------------------
        from deployments.runtimes.base import Probe, RevisionSpec
        from deployments.runtimes.single_host import SingleHostRuntime

        # Its own HAProxy, state folder and installation id: the platform's HAProxy outlives
        # the platform and names backends per installation, so a second runtime on the same
        # state folder would drive a proxy that does not exist ("No such proxy").
        naive_apps_port = free_port()
        naive_runtime = SingleHostRuntime(
            f"unix://{var / 'podman.sock'}",
            state_dir=str(var / "naive-single-host"),
            haproxy_bind=f"127.0.0.1:{naive_apps_port}",
            base_domain="localhost",
            instance=naive_instance,
        )
        naive_runtime.router.ensure_running()
        naive_url = f"http://127.0.0.1:{naive_apps_port}/"
        old, new = deployed[-2], deployed[-1]

        def relabel(image: str) -> str:
            # The runtime runs an image only as the project it was built for: the baseline,
            # which is not a platform project, gets its own copy labelled for naive_slug.
            import io

            tag = f"{naive_slug}:{image.rsplit(':', 1)[-1]}"
            naive_runtime.client.images.build(
                fileobj=io.BytesIO(f"FROM {image}\nLABEL switchback.project={naive_slug}\n".encode()),
                tag=tag, rm=True)
            return tag

        built = {d["number"]: d["image"] for d in [d1, *deploys]}
        image_of = {d["number"]: relabel(built[d["number"]]) for d in (old, new)}

        def spec(revision: str, who: dict) -> RevisionSpec:
            probe = Probe("/readyz", period_seconds=0.2, timeout_seconds=1.0)
            return RevisionSpec(
                project=naive_slug,
                revision=revision,
                image=image_of[who["number"]],
                replicas=args.replicas,
                startup=Probe("/healthz", period_seconds=0.2),
                readiness=probe,
                liveness=Probe("/healthz", period_seconds=0.2),
                sha=who["sha"],
            )

        def wait_ready(revision: str) -> None:
            deadline = time.monotonic() + 60
            while naive_runtime.revision_health(project=naive_slug, revision=revision).state.value != "ready":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"naive revision {revision} not ready")
                time.sleep(0.02)

        # Not a platform project: its reconciler and liveness checks never touch it.
        naive_runtime.start_revision(spec=spec("1", old))
        wait_ready("1")
        naive_runtime.set_traffic(project=naive_slug, weights={"1": 100})
        naive_host = f"{naive_slug}.localhost"
        assert requests.get(naive_url + "version", headers={"Host": naive_host}, timeout=5).text.strip() == old["sha"]
        npoller = Poller(naive_host, naive_apps_port).start()
        pollers.append(npoller)
        wrk = Wrk(
            naive_url,
            naive_host,
            rate=args.rate,
            threads=args.threads,
            connections=args.connections,
            seconds=120,
            script=script,
        )
        time.sleep(args.warmup)
        t0 = time.monotonic()
        naive_runtime.retire_revision(project=naive_slug, revision="1", drain_seconds=0)  # stop ...
        t_stopped = time.monotonic()
        naive_runtime.start_revision(spec=spec("2", new))  # ... then start
        wait_ready("2")
        naive_runtime.set_traffic(project=naive_slug, weights={"2": 100})
        t1 = time.monotonic()
        seen = npoller.first_served_by(new["sha"], t0, timeout=30)
        time.sleep(args.baseline_tail)
        naive = wrk.stop()
        wrk = None
        npoller.stop()
        old_ok = [s.received for s in npoller.samples if s.status == 200 and s.body == old["sha"]]
        last_old = max([r for r in old_ok if r <= (seen.received if seen else t1)], default=t0)
        results["naive"] = {
            **naive,
            "switch_seconds": t1 - t0,
            "stop_seconds": t_stopped - t0,
            "outage": (seen.received - last_old) if seen else float("nan"),
            "poller_failed": sum(1 for s in npoller.samples if s.status != 200),
        }
        log(
            f"baseline: {naive['non2xx']} non-2xx, {naive['socket_errors']} socket errors, "
            f"outage {results['naive']['outage']:.2f}s"
        )
        for revision in ("1", "2"):  # retire keeps stopped containers (cold rollbacks): remove them
            naive_runtime.discard_revision(project=naive_slug, revision=revision)
    finally:
        for p in pollers:
            p.stop()
        if wrk is not None:
            with contextlib.suppress(Exception):
                wrk.stop()
        if naive_runtime is not None:
            naive_runtime.close(stop_router=True)
        # Managed containers of other Switchback instances on this host, to see whether our
        # shutdown touches them (it should not).
        with contextlib.suppress(Exception):
            others_before = [
                n.split()[0] for n in podman_names("sb-") if n.endswith("running") and f"-{slug}-" not in n
            ]
        kids = descendants(plat.proc.pid) if plat.proc else set()
        log("stopping the platform (SIGTERM)")
        results["stop_seconds"] = plat.stop()
        # The apps and HAProxy outlive `up` by design (issue 11): stop them explicitly.
        stopped = subprocess.run([PYTHON, "manage.py", "apps_stop"], cwd=ROOT, env=plat.env, capture_output=True,
                                 text=True, timeout=120)
        log(f"manage.py apps_stop: exit {stopped.returncode} {stopped.stdout.strip()[-300:]}")
        time.sleep(1)
        results["left"] = {
            "processes": [f"{p}" for p in kids if alive(p)],
            "haproxy/podman of this run": processes_mentioning(str(var)),
            # Names are sb-<installation>-<slug>-<revision>-<index> (sb-<slug>-... before ids).
            "containers": [n for n in podman_names("sb-") if f"-{slug}-" in n or n.startswith(f"sb-{slug}-")]
            + podman_names(f"sb-{naive_instance}-"),
        }
        with contextlib.suppress(Exception):
            running = {n.split()[0] for n in podman_names("sb-") if n.endswith("running")}
            results["others_stopped"] = [n for n in others_before if n not in running]
        results["elapsed"] = time.monotonic() - start_all
        loadavg.append(Path("/proc/loadavg").read_text().split()[0])
        results["loadavg"] = loadavg
    report(results, args)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    left = results["left"]
    return 1 if any(left.values()) else 0


def report(r: dict, args) -> None:
    main, naive = r.get("main"), r.get("naive")
    if main is None:
        print("The run did not reach the end of phase 1; nothing to report.")
        return
    lat = [x["latency"] for x in r["rollbacks"]]
    over = [overhead_of(d) for d in r["deploys"]]
    oh = [o["overhead"] for o in over]
    strict = [o["total"] - o["build"] - r["app_boot"] for o in over]
    left = r["left"]
    clean = "yes" if not any(left.values()) else f"NO: {left}"
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    print(f"\n## Zero downtime: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}\n")
    print(
        f"Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}. Load: wrk, {args.threads} threads, {args.connections} "
        f"connections, fixed schedule of {args.rate} req/s, through HAProxy to {args.replicas} replica(s) "
        f"of examples/hello ({APPS[args.app]}). Whole run {r['elapsed']:.0f}s; 1-minute load average "
        f"{r['loadavg'][0]} at the start, {r['loadavg'][1]} at the end (other work shares this host).\n"
    )
    print("| measure | result | target |")
    print("|---|---|---|")
    print(f"| load duration | {main['seconds']:.1f} s | >= 60 s |")
    print(f"| total requests | {main['requests']} | |")
    print(f"| achieved rate | {main['rate']:.0f} req/s (scheduled {args.rate}) | >= 500 req/s |")
    print(
        f"| latency p50 / p99 / max | {main['lat_p50_us'] / 1000:.1f} / {main['lat_p99_us'] / 1000:.1f} / "
        f"{main['lat_max_us'] / 1000:.1f} ms | |"
    )
    print(f"| non-2xx responses | {main['non2xx']}{' (' + main['statuses'] + ')' if main['statuses'] else ''} | 0 |")
    print(
        f"| socket errors (connect/read/write/timeout) | {main['socket_errors']} ({main['connect']}/"
        f"{main['read']}/{main['write']}/{main['timeout']}) | 0 |"
    )
    print(f"| /version poller: requests / failed | {r['poller']['count']} / {r['poller']['failed']} | 0 failed |")
    hs = r.get("haproxy") or {}
    if hs:
        print(
            f"| HAProxy backend: connection errors / retries / redispatches / 5xx (hidden by retries) | "
            f"{hs['econ']} / {hs['wretr']} / {hs['wredis']} / {hs['hrsp_5xx']} of {hs['stot']} sessions | 0 |"
        )
    print(f"| deploys under load | {len(r['deploys'])} | >= 5 |")
    print(f"| rollbacks under load (warm target) | {len(lat)} | >= 5 |")
    print(
        f"| rollback switch latency p50 / p99 / max | {ms(statistics.median(lat))} / {ms(percentile(lat, 99))} / "
        f"{ms(max(lat))} | p99 < 250 ms |"
    )
    print(f"| platform overhead per deploy p50 / max | {statistics.median(oh):.2f} s / {max(oh):.2f} s | < 2 s |")
    print(
        f"| same, strict (probe wait charged to the platform) p50 / max | {statistics.median(strict):.2f} s / "
        f"{max(strict):.2f} s | |"
    )
    if naive:
        print(
            f"| **baseline** stop-then-start: failed requests | {naive['non2xx'] + naive['socket_errors']} of "
            f"{naive['requests']} ({naive['non2xx']} non-2xx{' ' + naive['statuses'] if naive['statuses'] else ''}"
            f", {naive['socket_errors']} socket errors) at {naive['rate']:.0f} req/s | |"
        )
        print(
            f"| **baseline** outage (last old response -> first new one) | {naive['outage']:.2f} s "
            f"(stop {naive['stop_seconds']:.2f} s + start and probe; {naive['poller_failed']} failed polls) | |"
        )
    print(f"| clean stop (SIGTERM -> exit {r['stop_seconds']:.1f} s), nothing left behind | {clean} | yes |")

    print("\nPer deploy (seconds; build and boot are excluded from the overhead):\n")
    print("| # | total | queue | build | start | boot | switch | overhead | strict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for o, s in zip(over, strict, strict=True):
        print(
            f"| {o['number']} | {o['total']:.2f} | {o['queue']:.2f} | {o['build']:.2f} | {o['start']:.2f} | "
            f"{o['boot']:.2f} | {o['switch']:.2f} | {o['overhead']:.2f} | {s:.2f} |"
        )
    print("\nPer rollback (API request -> first response from the target revision, through HAProxy):\n")
    print("| # | to | switch latency | API answered | live in the API | queue | start | verify | switch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for x in r["rollbacks"]:
        o = overhead_of(x["detail"])
        print(
            f"| {x['number']} | #{x['to']} | {ms(x['latency'])} | {ms(x['api'])} | {ms(x['live_after'])} | "
            f"{ms(o['queue'])} | {ms(o['start'])} | {ms(o['boot'])} | {ms(o['switch'])} |"
        )
    print("\nHow the overhead is computed:\n")
    print("```\n" + FORMULA.replace("'strict'", f"'strict' (app boot measured: {ms(r['app_boot'])})") + "\n```")
    print(f"\nFor scale: one container start call to the engine took {ms(r['start_call'])} (median of 3).")
    print(
        "\nBaseline: a second app behind its own HAProxy and installation id (not a platform project, "
        "so the reconciler leaves it alone), same container engine, switched with the runtime's own "
        "primitives in the naive order: retire the live revision "
        "(servers removed, containers stopped), then start the new one, wait for its "
        "probes, route to it. Same wrk rate and connections."
    )
    if r.get("others_stopped"):
        print(
            f"\nNote: other Switchback instances' containers stopped by this run's shutdown: "
            f"{', '.join(r['others_stopped'])} (installation ids should make this impossible: check "
            "whether those runs simply ended meanwhile)."
        )


APPS = {
    "httpd": "its routes served by busybox httpd, see HTTPD_SERVE",
    "hello": "unchanged: busybox nc forks a shell per request",
}



def platform_leftovers_remove(plat, slug: str) -> None:
    """After `plat.stop()`: the apps and HAProxy outlive `up` by design (issue 11), so stop
    them with `manage.py apps_stop`, then remove the project's containers and images by label
    (names carry the installation id: sb-<installation>-<slug>-...)."""
    subprocess.run([PYTHON, "manage.py", "apps_stop"], cwd=ROOT, env=plat.env, capture_output=True, timeout=120)
    subprocess.run(f"podman ps -aq --filter label=switchback.project={slug} | xargs -r podman rm -f -t 0",
                   shell=True, capture_output=True, timeout=120)
    subprocess.run(f"podman images -q --filter label=switchback.project={slug} | xargs -r podman rmi -f",
                   shell=True, capture_output=True, timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=600, help="requests per second, fixed schedule (default 600)")
    parser.add_argument("--seconds", type=int, default=60, help="minimum load duration of phase 1 (default 60)")
    parser.add_argument("--deploys", type=int, default=5)
    parser.add_argument("--rollbacks", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the first change")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between changes")
    parser.add_argument("--baseline-tail", type=float, default=2.0)
    parser.add_argument(
        "--app",
        choices=sorted(APPS),
        default="httpd",
        help="httpd: examples/hello served by busybox httpd (default); hello: unchanged",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, repo)")
    parser.add_argument("--database", default=DB_NAME,
                        help=f"PostgreSQL database, dropped and created (default {DB_NAME})")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis database, flushed (default {REDIS_URL})")
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.database):
        sys.exit("--database: lowercase letters, digits and underscores")
    globals().update(DB_NAME=args.database, REDIS_URL=args.redis_url)  # engineers sharing a machine pick their own
    for tool in ("wrk", "podman", "haproxy", "git"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: run scripts/install-system-deps.sh")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
