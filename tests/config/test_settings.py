"""Settings come from the environment; production refuses to start without a secret."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_check(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL")}
    env.update(env_overrides)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_check({"DJANGO_SETTINGS_MODULE": "config.settings.production", "SWITCHBACK_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_refuses_to_start_without_encryption_keys(tmp_path):
    result = run_check({"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "x" * 50,
                        "SWITCHBACK_VAR_DIR": str(tmp_path), "SWITCHBACK_ENCRYPTION_KEYS": ""})
    assert result.returncode != 0
    assert "SWITCHBACK_ENCRYPTION_KEYS is not set" in result.stderr


def test_production_starts_with_one(tmp_path):
    result = run_check({"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "x" * 50,
                        "SWITCHBACK_VAR_DIR": str(tmp_path),
                        "SWITCHBACK_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWtleS1ub3Qtc2VjcmV0LTMyYnl0ZXM="})
    assert result.returncode == 0, result.stderr


def test_database_and_broker_urls_are_read_from_the_environment(tmp_path):
    code = ("from django.conf import settings; d = settings.DATABASES['default'];"
            "print(d['ENGINE'], d['NAME'], d['HOST'], settings.CELERY_BROKER_URL)")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", SWITCHBACK_VAR_DIR=str(tmp_path),
               DATABASE_URL="postgres://u:p@db.example:5432/sb", REDIS_URL="redis://cache.example:6379/3")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-v", "0", "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["django.db.backends.postgresql", "sb", "db.example", "redis://cache.example:6379/3"]
    # And with neither set, the embedded default: SQLite and the file-based broker.
    env = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    out = subprocess.run([sys.executable, "manage.py", "shell", "-v", "0", "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "django.db.backends.sqlite3" and out[1] == str(tmp_path / "switchback.sqlite3")
    assert out[-1] == "filesystem://"


def test_kubernetes_build_and_cluster_settings_are_read_from_the_environment(tmp_path):
    code = ("from django.conf import settings; import json; k = settings.SWITCHBACK['KUBERNETES'];"
            "print(json.dumps([k.get('registry_secret'), k.get('executor_image'), k.get('namespace'),"
            " settings.SWITCHBACK['KUBE_CLUSTERS']]))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "SWITCHBACK_VAR_DIR": str(tmp_path),
           "KUBE_REGISTRY_SECRET": "regcred", "KUBE_BUILD_EXECUTOR_IMAGE": "gcr.io/kaniko-project/executor:v1.23.2",
           "KUBE_NAMESPACE": "apps", "KUBE_CLUSTERS": '{"eu": {"kubeconfig": "/etc/eu.yaml", "context": "eu"}}'}
    out = subprocess.run([sys.executable, "manage.py", "shell", "-v", "0", "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["regcred", "gcr.io/kaniko-project/executor:v1.23.2", "apps",
                               {"eu": {"kubeconfig": "/etc/eu.yaml", "context": "eu"}}]
    # A malformed KUBE_CLUSTERS stops the platform with the reason, before anything runs.
    result = run_check({**env, "KUBE_CLUSTERS": '{"eu": {"namespace": "apps"}}'})
    assert result.returncode != 0 and "names no kubeconfig" in result.stderr


def test_help_writes_nothing(tmp_path):
    """`manage.py --help` (and `help <command>`, `<command> --help`) on the embedded default
    creates no var/ folder, no keys and no broker folders."""
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL",
                                                            "SWITCHBACK_ENCRYPTION_KEYS")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", SWITCHBACK_VAR_DIR=str(var))
    for args in (["--help"], ["help", "up"], ["up", "--help"], []):
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert not var.exists(), (args, sorted(str(p) for p in var.rglob("*")))
    # A real command still makes what it needs.
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (var / "secret_key").exists() and (var / "broker" / "queue").is_dir()
