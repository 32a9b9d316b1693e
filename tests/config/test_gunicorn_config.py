"""config/gunicorn.py: web workers freeze their long-lived objects out of the collector's way."""

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


def test_worker_freezes_again_after_its_first_requests(unfrozen):
    gunicorn_config.post_worker_init(worker=None)
    after_init = gc.get_freeze_count()
    cache = [[object()] for _ in range(5_000)]  # what first requests load (caches, lazy imports)
    for _ in range(gunicorn_config.FREEZE_AFTER_REQUESTS - 1):
        gunicorn_config.post_request(worker=None, req=None, environ={}, resp=None)
    assert gc.get_freeze_count() == after_init
    gunicorn_config.post_request(worker=None, req=None, environ={}, resp=None)
    assert gc.get_freeze_count() >= after_init + len(cache)


def test_gunicorn_accepts_the_config_module():
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn", "--check-config",
         "config.wsgi"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test",
             "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
