"""The outbox with real Celery workers and Redis: a rate limit, a killed worker, a new one,
and every report sent in order.  The workers consume only a test queue (no rollout tasks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings as django_settings
from django.db import connection

from deployments.services import deployment_request
from reporting import outbox
from reporting.models import Report
from tests.reporting.conftest import SHA_A
from tests.rollout import rollout_drive_until_wait as drive

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_broker]
ROOT = Path(__file__).resolve().parents[2]
QUEUE = "reports-test"
FULL = [("deployment", SHA_A, "production"), ("status", 0, "queued"), ("status", 0, "in_progress"),
        ("status", 0, "success")]


def _worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", QUEUE,
                             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _until(predicate, seconds: float = 60.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def test_rate_limited_reports_survive_a_worker_restart(gh_project, user, fake_github, settings):
    broker = redis_lib.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.delete(QUEUE)
    settings.REPORTS_QUEUE = QUEUE
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "SWITCHBACK_REPORTS_QUEUE": QUEUE,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "REDIS_URL": django_settings.CELERY_BROKER_URL, "GITHUB_API_URL": fake_github.url,
           "GITHUB_TOKEN": "good-token", "SWITCHBACK_PUBLIC_URL": "https://switchback.example.com"}
    reset = fake_github.rate_limit("POST", r"/statuses$", reset_in=3)
    worker = _worker(env)
    try:
        drive(deployment_request(project=gh_project, sha=SHA_A, actor=user))  # rows, kicked through Redis
        assert _until(lambda: Report.objects.filter(response_code=403).exists())
        assert fake_github.sequence() == FULL[:1]
    finally:
        _stop(worker)  # a restart: the rows are all that remains
    # Kicks the dead worker never took die with it (a worker slow to boot would otherwise take
    # them after the reset and send before the sweep does).
    broker.delete(QUEUE)
    assert Report.objects.filter(state=Report.State.PENDING).count() == 3
    worker = _worker(env)
    try:
        # The limit's reset (or, if the worker met it after the reset, a second later).
        retry_at = Report.objects.get(response_code=403).next_attempt_at.timestamp()
        assert retry_at >= reset
        assert _until(lambda: time.time() > retry_at + 0.2, seconds=15)
        assert outbox.reports_sweep() == 1  # the beat's sweep hands the due stream out
        assert _until(lambda: not Report.objects.filter(state=Report.State.PENDING).exists())
    finally:
        _stop(worker)
        broker.delete(QUEUE)
    assert fake_github.sequence() == FULL
