"""The CLI against a running platform: pytest-django's live_server (the real Django app over
HTTP, PostgreSQL), a real Celery worker consuming the real Redis broker in a thread of
this process, and the in-memory runtime (tests/doubles/runtime.py).

Why not the embedded default in a subprocess: there, a rollout needs Podman builds and
HAProxy to go live (a minute or more per deployment, and flaky under the shared load),
while these tests are about the CLI and the API it speaks.  The worker shares the memory
runtime with the test, so the test can fail a build or read the traffic split.  The CLI
itself runs as a real subprocess (`python -m switchback_cli`, what the `switchback`
console script calls), with its own config folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def short_connections():
    """Request and worker threads close their connection after each request or task (else
    one outlives its thread and blocks dropping the test database)."""
    from django.db import connections

    settings_dict = connections.settings["default"]
    previous = settings_dict.get("CONN_MAX_AGE", 0)
    settings_dict["CONN_MAX_AGE"] = 0
    yield
    settings_dict["CONN_MAX_AGE"] = previous


@pytest.fixture
def worker(short_connections, memory_runtime, redis_client, transactional_db):
    """A real Celery worker (solo pool) on the broker, both queues, in a thread."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.loader.import_default_modules()
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["celery", "switch"],
                      shutdown_timeout=30):
        yield memory_runtime


@pytest.fixture
def platform(worker, live_server, make_project, django_user_model):
    """The live platform with project 'hello' (kept warm 5 min) and a deployer's token."""
    from deployments.models import Membership, Role
    from deployments.services_members import token_regenerate

    project = make_project(keep_warm_seconds=300, watch_seconds=0)
    dora = django_user_model.objects.create_user("dora", password="dora-pw-42")
    Membership.objects.create(project=project, user=dora, role=Role.DEPLOYER)
    return {"url": live_server.url, "token": token_regenerate(user=dora), "project": project,
            "runtime": worker}


@pytest.fixture
def cli(tmp_path):
    """Run `switchback ARGS` as a subprocess with its own config folder; returns CompletedProcess."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBACK_")}
    env.update(SWITCHBACK_CONFIG_DIR=str(home / "config"), HOME=str(home), COLUMNS="200", NO_COLOR="1",
               TERM="dumb")

    def run(*args: str, stdin: str | None = None, extra_env: dict | None = None, timeout: float = 120):
        return subprocess.run([sys.executable, "-m", "switchback_cli", *args], cwd=ROOT, input=stdin,
                              env={**env, **(extra_env or {})}, capture_output=True, text=True, timeout=timeout)

    def popen(*args: str):
        return subprocess.Popen([sys.executable, "-m", "switchback_cli", *args], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    run.popen = popen
    run.config_dir = home / "config"
    return run
