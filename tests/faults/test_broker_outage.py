"""Celery survives a broker outage: workers reconnect when Redis comes back.

Redis (a private server on a free port) is stopped and started again several times while
tasks are in flight on both of `up`'s workers (the main one and the `switch` one).  Before
config/broker_resilience.py, a blip made the `switch` worker exit with
"Unrecoverable error: AttributeError('NoneType' object has no attribute 'hostname')".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
BLIPS = 5


def _worker(env: dict, log: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "-I", "tests.faults.worker_tasks",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _send(url: str, name: str, *args, queue: str = "celery") -> None:
    from celery import Celery

    app = Celery(broker=url)  # a fresh connection: the last one died with the broker
    try:
        app.send_task(name, args=list(args), queue=queue)
    finally:
        app.close()


def _wait_ready(log: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "ready." not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


@pytest.fixture
def broker(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_workers_survive_redis_stopping_and_process_a_task_afterwards(broker, tmp_path):
    env = {**os.environ, "REDIS_URL": broker.url, "SWITCHBACK_VAR_DIR": str(tmp_path / "var"),
           "PYTHONPATH": str(ROOT)}
    main_log, switch_log = tmp_path / "worker.log", tmp_path / "switch.log"
    workers = [
        _worker(env, main_log, "--concurrency", "3"),
        _worker(env, switch_log, "--queues", "switch", "--hostname", f"switch-{os.getpid()}@%h",
                "--concurrency", "2"),
    ]
    try:
        _wait_ready(main_log, workers[0])
        _wait_ready(switch_log, workers[1])
        for _ in range(BLIPS):
            # Tasks in flight on both workers (acks_late: unacked while Redis goes away).
            for _ in range(3):
                _send(broker.url, "tests.faults.nap", 2)
            _send(broker.url, "tests.faults.nap", 1, queue="switch")
            time.sleep(0.5)
            broker.stop()
            time.sleep(1.0)
            broker.start()
            time.sleep(3)
        assert [w.poll() for w in workers] == [None, None], (
            main_log.read_text()[-3000:] + switch_log.read_text()[-3000:])
        for queue, log in (("celery", main_log), ("switch", switch_log)):
            marker = tmp_path / f"done-{queue}"
            _send(broker.url, "tests.faults.touch", str(marker), queue=queue)
            deadline = time.monotonic() + 90  # the worker's reconnect back-off, bounded
            while not marker.exists():
                assert time.monotonic() < deadline, f"{queue} worker did not take a task: {log.read_text()[-3000:]}"
                time.sleep(0.2)
        assert "Unrecoverable error" not in main_log.read_text() + switch_log.read_text()
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait(5)
