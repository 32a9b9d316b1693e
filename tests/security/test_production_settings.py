"""Production settings (issue 9, item 9): `check --deploy` is clean, and the headers are real.

The check runs in a subprocess under config.settings.production, as an operator would run
it, with a strong SECRET_KEY and the encryption keys from the environment.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "DJANGO_"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.production", SECRET_KEY=secrets.token_urlsafe(50),
               SWITCHBACK_ENCRYPTION_KEYS="dGVzdC1vbmx5LWtleS1ub3Qtc2VjcmV0LTMyYnl0ZXM=",
               SWITCHBACK_VAR_DIR=str(tmp_path), **extra)
    return env


def test_check_deploy_has_no_warnings(tmp_path):
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=production_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout, done.stdout + done.stderr


def test_check_deploy_would_catch_a_missing_hsts(tmp_path):
    # The check is not vacuous: turning HSTS off makes it warn (and fail at WARNING).
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=production_env(tmp_path, SECURE_HSTS_SECONDS="0"),
                          capture_output=True, text=True)
    assert done.returncode != 0 and "security.W004" in done.stdout + done.stderr


PROBE = """
from django.test import Client
c = Client()
for path, headers in [("/healthz", {}), ("/login/", {}), ("/login/", {"HTTP_X_FORWARDED_PROTO": "https"})]:
    r = c.get(path, **headers)
    print(path, bool(headers), r.status_code, r.get("Location", ""), r.get("Strict-Transport-Security", ""),
          "|", r.get("Content-Security-Policy", ""), "|", r.get("X-Frame-Options", ""), r.get("Referrer-Policy", ""))
"""


def test_production_headers_and_the_probe_exemption(tmp_path):
    env = production_env(tmp_path, DATABASE_URL=os.environ.get("DATABASE_URL", ""), ALLOWED_HOSTS="testserver")
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    probe, plain, secure = done.stdout.strip().splitlines()
    # Kubernetes probes over plain HTTP are answered, not redirected.
    assert probe.startswith("/healthz False 200"), probe
    # Anything else over plain HTTP goes to HTTPS.
    assert plain.startswith("/login/ False 301 https://testserver/login/"), plain
    # Over HTTPS (as the proxy says): HSTS, CSP, no framing, same-origin referrers.
    assert "/login/ True 200" in secure and "max-age=31536000; includeSubDomains; preload" in secure, secure
    assert "default-src 'self'" in secure and "script-src 'self'" in secure and "frame-ancestors 'none'" in secure
    assert "'unsafe-inline'" not in secure and secure.endswith("DENY same-origin"), secure


@pytest.mark.django_db
def test_every_page_carries_the_csp_and_no_template_needs_inline_code(client, django_user_model):
    import re

    django_user_model.objects.create_user("u", password="pw-u-123456")
    client.force_login(django_user_model.objects.get(username="u"))
    response = client.get("/account/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    # The policy forbids inline code: no template may rely on it.
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", text), template
