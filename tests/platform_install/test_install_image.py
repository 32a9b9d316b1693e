"""The platform image's build file and entrypoint, and docker-compose.yml.

No image can be built here (no base image can be pulled), so the Containerfile is checked
statically; the entrypoint itself runs for real against this machine's PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "platform" / "Containerfile"
ENTRYPOINT = ROOT / "platform" / "entrypoint.sh"
COMPOSE = ROOT / "docker-compose.yml"
PLATFORM_SERVICES = ("web", "worker", "switch-worker", "beat")
ADMIN_DSN = os.environ.get("SWITCHBACK_TEST_ADMIN_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SWITCHBACK_TEST_ENTRYPOINT_REDIS", "redis://127.0.0.1:6379/13")


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


# --- Containerfile -----------------------------------------------------------------------------
def test_containerfile_builds_from_python_slim_and_installs_the_project():
    steps = instructions()
    args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in steps if k == "ARG" and "=" in v}
    assert args["BASE_IMAGE"].startswith("python:3.11-slim")
    assert [v for k, v in steps if k == "FROM"] == ["${BASE_IMAGE}"]
    runs = " && ".join(v for k, v in steps if k == "RUN")
    assert "pip install ." in runs
    assert "manage.py collectstatic --noinput" in runs
    assert "cannot pull base images" in CONTAINERFILE.read_text()  # why it is not built here


def test_containerfile_copies_only_what_exists_and_runs_as_non_root():
    steps = instructions()
    for kind, value in steps:
        if kind == "COPY":
            *sources, _dest = [s for s in shlex.split(value) if not s.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    users = [v for k, v in steps if k == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0
    # Kubernetes checks runAsNonRoot against the numeric user; the manifests use the same.
    manifests = "\n".join(p.read_text() for p in (ROOT / "platform" / "kubernetes").glob("*.yaml"))
    assert f"runAsUser: {users[-1].split(':')[0]}" in manifests
    entry = [v for k, v in steps if k == "ENTRYPOINT"]
    assert entry == ['["/usr/local/bin/switchback-entrypoint"]']
    assert any(k == "COPY" and "platform/entrypoint.sh /usr/local/bin/switchback-entrypoint" in v for k, v in steps)
    assert ("CMD", '["web"]') in steps


# --- entrypoint --------------------------------------------------------------------------------
def test_entrypoint_is_valid_bash_with_every_role():
    assert os.access(ENTRYPOINT, os.X_OK), "entrypoint.sh must be executable"
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    for role in ("web", "worker", "switch-worker", "beat", "migrate", "check"):
        assert re.search(rf"^\s+{role}\)$", text, re.MULTILINE), role
    assert "gunicorn config.wsgi" in text and '"0.0.0.0:${PORT:-8000}"' in text
    assert "celery -A config worker" in text and "celery -A config beat" in text
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(ENTRYPOINT)], check=True)


@pytest.fixture
def database():
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    name = f"switchback_install_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_DSN}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def entrypoint_env(database_url: str, **extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PYTEST", "SWITCHBACK_", "KUBE")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        SWITCHBACK_HOME=str(ROOT),
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="install-test-not-secret",
        # Production settings require encryption keys: the fixed test-only key.
        SWITCHBACK_ENCRYPTION_KEYS="dGVzdC1vbmx5LWtleS1ub3Qtc2VjcmV0LTMyYnl0ZXM=",
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        ALLOWED_HOSTS="switchback.example.com,localhost",
        HOSTNAME=f"sbtest-{uuid.uuid4().hex[:8]}",
        **extra,
    )
    return env


def run(args, env, timeout=120):
    return subprocess.run([str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_migrate_from_several_pods_at_once(database):
    """Web pods that start together each run the migrations; the advisory lock makes that safe."""
    env = entrypoint_env(database)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: run(["migrate"], env), range(3)))
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    assert sum("Applying " in r.stdout for r in results) == 1  # one migrated, the others found it done
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, host: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_web_migrates_then_serves_health_endpoints(database):
    port = free_port()
    env = entrypoint_env(database, PORT=str(port), WEB_CONCURRENCY="1")
    proc = subprocess.Popen(
        [str(ENTRYPOINT), "web"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_http(f"{base}/healthz", "localhost") == 200
        assert wait_http(f"{base}/readyz", "localhost") == 200  # database and broker reachable
        assert wait_http(f"{base}/healthz", f"127.0.0.1:{port}") == 400  # not in ALLOWED_HOSTS
        # docker-compose's healthcheck for web, pointed at this port.
        test = yaml.safe_load(COMPOSE.read_text())["services"]["web"]["healthcheck"]["test"]
        assert test[0] == "CMD"
        check = [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in test[1:]]
        check[0] = sys.executable
        subprocess.run(check, check=True, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)  # gunicorn is PID 1 in the container: exec'd
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-3000:]
    assert "Applying " in out  # migrated before serving
    assert "Shutting down" in out or "Handling signal: term" in out


def test_worker_and_beat_checks_follow_their_processes(database, tmp_path):
    env = entrypoint_env(database, CHECK_TIMEOUT="2", CELERY_BEAT_SCHEDULE_FILE=str(tmp_path / "schedule"))
    assert run(["check", "worker"], env).returncode != 0  # no worker yet
    assert run(["check", "switch-worker"], env).returncode != 0
    assert run(["check", "beat"], env).returncode != 0  # no schedule file yet
    worker = subprocess.Popen([str(ENTRYPOINT), "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    switch = subprocess.Popen([str(ENTRYPOINT), "switch-worker"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    beat = subprocess.Popen([str(ENTRYPOINT), "beat"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while run(["check", "worker"], env).returncode != 0:
            assert time.monotonic() < deadline, "the worker never answered its check"
        while run(["check", "switch-worker"], env).returncode != 0:
            assert time.monotonic() < deadline, "the switch worker never answered its check"
        queues = subprocess.run([sys.executable, "-m", "celery", "-A", "config", "inspect", "active_queues",
                                 "--destination", f"switch@{env['HOSTNAME']}", "--json"],
                                env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
        (consumed,) = json.loads(queues.stdout).values()
        assert [q["name"] for q in consumed] == ["switch"], queues.stdout
        while run(["check", "beat"], env).returncode != 0:
            assert time.monotonic() < deadline, "beat never wrote its schedule"
            time.sleep(0.5)
        assert run(["check", "beat"], {**env, "BEAT_MAX_AGE": "-1"}).returncode != 0  # a stale schedule fails
        assert run(["check", "nonsense"], env).returncode == 64
    finally:
        for proc in (worker, switch, beat):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, switch, beat):
            proc.communicate(timeout=30)


# --- docker-compose.yml ------------------------------------------------------------------------
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_runs_the_platform_beside_postgres_and_redis():
    services = compose()["services"]
    assert set(services) == {*PLATFORM_SERVICES, "postgres", "redis"}
    for name in PLATFORM_SERVICES:
        svc = services[name]
        assert svc["build"] == {"context": ".", "dockerfile": "platform/Containerfile"}
        assert (ROOT / svc["build"]["dockerfile"]).is_file()
        assert svc["command"] == [name]
        env = svc["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert "@postgres:5432/" in env["DATABASE_URL"] and env["REDIS_URL"].startswith("redis://redis:6379/")
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "no default secret key in production"
        assert env["SWITCHBACK_ENCRYPTION_KEYS"].startswith("${SWITCHBACK_ENCRYPTION_KEYS:?"), \
            "no default encryption key in production"
        for dep in ("postgres", "redis"):
            assert svc["depends_on"][dep]["condition"] == "service_healthy"
        assert svc["read_only"] is True and "/tmp" in svc["tmpfs"] and svc["cap_drop"] == ["ALL"]
    for name in ("worker", "switch-worker", "beat"):  # they need the schema web migrates
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"
    assert "8000" in services["web"]["ports"][0].split(":")[-1]
    for name, svc in services.items():
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert services["worker"]["healthcheck"]["test"][1:] == ["switchback-entrypoint", "check", "worker"]
    assert services["beat"]["healthcheck"]["test"][1:] == ["switchback-entrypoint", "check", "beat"]
    # Rollbacks never queue behind builds: a worker for the "switch" queue alone.
    assert services["switch-worker"]["healthcheck"]["test"][1:] == ["switchback-entrypoint", "check", "switch-worker"]
    volumes = compose()["volumes"]
    assert any(v.split(":")[0] in volumes and "/var/lib/postgresql/data" in v for v in services["postgres"]["volumes"])
    assert any(v.split(":")[0] in volumes for v in services["redis"]["volumes"])


def settings_variables() -> set[str]:
    """Environment variables the platform reads: settings, the Celery app, the entrypoint."""
    names = set()
    for path in [*(ROOT / "config").rglob("*.py"), ENTRYPOINT]:
        text = path.read_text()
        names |= set(re.findall(r"environ(?:\.get|\.setdefault)?\(\s*[\"']([A-Z0-9_]+)", text))
        names |= set(re.findall(r"env_(?:bool|list)\(\s*[\"']([A-Z0-9_]+)", text))
        names |= set(re.findall(r"\$\{([A-Z0-9_]+)(?::-|\})", text))
    return names


def test_every_variable_compose_and_kustomize_set_is_read_by_the_platform():
    known = settings_variables() | {"DJANGO_SETTINGS_MODULE"}
    for name in PLATFORM_SERVICES:
        unknown = set(compose()["services"][name]["environment"]) - known
        assert not unknown, f"compose sets variables nothing reads: {unknown}"
    kustomization = yaml.safe_load((ROOT / "platform" / "kubernetes" / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    unknown = {lit.split("=", 1)[0] for lit in generator["literals"]} - known
    assert not unknown, f"the ConfigMap sets variables nothing reads: {unknown}"


def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if not docker:
        pytest.skip("the docker CLI is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(
            f"`docker compose` is not available here ({(probe.stderr or probe.stdout).strip().splitlines()[0][:120]})"
        )
    out = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SECRET_KEY": "compose-config-check",
             "SWITCHBACK_ENCRYPTION_KEYS": "compose-config-check"},
    )
    assert out.returncode == 0, out.stderr
