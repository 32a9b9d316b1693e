"""Issue 9: `manage.py secrets_rotate` re-encrypts every stored secret with the newest key.

Values written under key A; the operator puts B in front ([B, A]) and rotates; with [B]
alone every value still opens, and none opens with A.
"""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.db import connection

from deployments import crypto
from deployments.envvars import config_env
from deployments.models import Deployment, Project
from deployments.services import deployment_request

pytestmark = pytest.mark.django_db

KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))


def _raw_values() -> list[str]:
    """Every ciphertext the database holds, read from the raw columns."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret, env FROM deployments_project ORDER BY id")
        values = [v for row in cursor.fetchall() for v in row if v]
        cursor.execute("SELECT config->>'env' FROM deployments_deployment ORDER BY id")
        values += [row[0] for row in cursor.fetchall()]
    return values


def _opens_with(key: str, stored: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(stored[len(crypto.PREFIX):].encode())
    except InvalidToken:
        return False
    return True


@pytest.fixture
def written_with_a(settings, make_project, memory_runtime, user):
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_A]
    project = make_project(webhook_secret="whsec-rot", env={"API_KEY": "env-rot"})
    other = make_project(slug="other", repository="octo/other", webhook_secret="whsec-other", env={})
    deployment_request(project=project, sha="a" * 40, actor=user)
    deployment_request(project=other, sha="b" * 40, actor=user)
    # A value left plain by an older version: rotation encrypts it too.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE deployments_project SET webhook_secret = 'whsec-plain-leftover' WHERE id = %s",
                       [other.pk])
    values = _raw_values()
    assert len(values) == 6
    assert all(_opens_with(KEY_A, v) for v in values if v != "whsec-plain-leftover")
    return project, other


def _everything_readable(project, other) -> None:
    project, other = Project.objects.get(pk=project.pk), Project.objects.get(pk=other.pk)
    assert (project.webhook_secret, project.env) == ("whsec-rot", {"API_KEY": "env-rot"})
    assert (other.webhook_secret, other.env) == ("whsec-plain-leftover", {})
    assert config_env(Deployment.objects.get(project=project).config) == {"API_KEY": "env-rot"}
    assert config_env(Deployment.objects.get(project=other).config) == {}


def test_rotate_then_the_new_key_alone_opens_everything(written_with_a, settings, capsys):
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    call_command("secrets_rotate")
    out = capsys.readouterr().out
    assert "deployments_project.webhook_secret: 2 re-encrypted" in out
    assert "deployments_project.env: 2 re-encrypted" in out
    assert "deployments_deployment.config.env: 2 re-encrypted" in out

    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_B]
    _everything_readable(*written_with_a)
    values = _raw_values()
    assert all(_opens_with(KEY_B, v) and not _opens_with(KEY_A, v) for v in values)


def test_without_rotation_the_old_values_do_not_open(written_with_a, settings):
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(crypto.SecretUnreadable):
        Project.objects.get(pk=written_with_a[0].pk)


def test_rotation_is_idempotent(written_with_a, settings, capsys):
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    call_command("secrets_rotate")
    first = _raw_values()
    capsys.readouterr()
    call_command("secrets_rotate")
    out = capsys.readouterr().out
    assert _raw_values() == first  # nothing rewritten
    assert "0 value(s) re-encrypted" in out and "2 already on the newest key" in out
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_B]
    _everything_readable(*written_with_a)


def test_a_value_no_key_opens_is_reported_and_nothing_is_lost(written_with_a, settings):
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_C]  # the operator forgot the old key
    before = _raw_values()
    with pytest.raises(CommandError, match="none of the configured keys"):
        call_command("secrets_rotate")
    # What it could not open is left as it was (the plain leftover did get encrypted, with C).
    assert {v for v in before if crypto.is_encrypted(v)} <= set(_raw_values())
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_C, KEY_A]
    call_command("secrets_rotate")
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_C]
    _everything_readable(*written_with_a)


def test_a_snapshot_written_before_encryption_is_encrypted(written_with_a, settings):
    project = written_with_a[0]
    deployment = Deployment.objects.get(project=project)
    Deployment.objects.filter(pk=deployment.pk).update(config={**deployment.config, "env": {"API_KEY": "env-rot"}})
    settings.SWITCHBACK_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    call_command("secrets_rotate")
    with connection.cursor() as cursor:
        cursor.execute("SELECT config::text FROM deployments_deployment WHERE id = %s", [deployment.pk])
        (raw,) = cursor.fetchone()
    assert "env-rot" not in raw and _opens_with(KEY_B, json.loads(raw)["env"])
