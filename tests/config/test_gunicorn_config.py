"""config/gunicorn.py: web workers freeze their long-lived objects out of the collector's way."""

import contextlib
import gc
import subprocess
import sys
from pathlib import Path

import pytest

from config import gunicorn as gunicorn_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def unfrozen(monkeypatch):
    gc.unfreeze()
    monkeypatch.setattr(gunicorn_config, "_served", 0)
    yield
    gc.unfreeze()


def test_worker_freezes_the_loaded_application(unfrozen):
    assert gc.get_freeze_count() == 0
    gunicorn_config.post_worker_init(worker=None)
    assert gc.get_freeze_count() > 10_000  # Django, DRF, Celery... are all loaded here


def test_worker_freezes_again_after_its_first_requests(unfrozen, monkeypatch):
    gunicorn_config.post_worker_init(worker=None)
    after_init = gc.get_freeze_count()
    freezes = []
    real_freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: (freezes.append(1), real_freeze())[1])
    cache = [[object()] for _ in range(5_000)]  # what first requests load (caches, lazy imports)
    for _ in range(gunicorn_config.FREEZE_AFTER_REQUESTS - 1):
        gunicorn_config.post_request(worker=None, req=None, environ={}, resp=None)
    assert freezes == []  # (counting frozen objects is not exact: a frozen object may be freed)
    gunicorn_config.post_request(worker=None, req=None, environ={}, resp=None)
    assert freezes == [1]
    assert gc.get_freeze_count() >= after_init + len(cache) - 1_000


def test_gunicorn_accepts_the_config_module():
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn", "--check-config",
         "config.wsgi"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test",
             "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workers_stop_when_their_master_is_killed(tmp_path):
    """kill -9 of gunicorn's master must not leave workers holding the port: the master
    supervisord starts next binds it at once."""
    import os
    import signal
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "app.py").write_text("def app(environ, start_response):\n"
                                     "    start_response('200 OK', [])\n    return [b'ok']\n")
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn",
                               "--chdir", str(tmp_path), "--bind", f"127.0.0.1:{port}", "--workers", "2",
                               # Without the hook, idle orphans would notice their master's
                               # death only after timeout/2 (300 s here), far past the bound.
                               "--timeout", "600", "app:app"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        time.sleep(1)  # both workers forked
        os.kill(master.pid, signal.SIGKILL)
        master.wait(5)
        deadline = time.monotonic() + 20  # a graceful stop of idle workers: well under this
        while True:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                    s.listen()
                    break  # nobody listens any more: the port is free for the next master
                except OSError:
                    pass
            assert time.monotonic() < deadline, "orphaned workers still hold the port"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(master.pid, signal.SIGKILL)
