"""Issue 9, secrets at rest: what PostgreSQL holds is ciphertext, and everything still works.

Webhook secrets and env values are Fernet ciphertexts in their columns, a deployment's
config snapshot holds its env as one ciphertext (and a rollback runs exactly that env),
API tokens are SHA-512 digests, and the migration converts rows written before all this.
"""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from deployments import engine
from deployments.envvars import config_env
from deployments.models import Deployment, Project, State
from deployments.services import deployment_request, deployment_rollback, project_update
from tests.rollout import rollout_drive_until_wait


def _raw(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def _open(stored: str) -> str:
    """Decrypt a raw column with the test key, independently of the code under test."""
    assert stored.startswith("fernet:"), stored[:40]
    return Fernet(settings.SWITCHBACK_ENCRYPTION_KEYS[0].encode()).decrypt(stored[len("fernet:"):].encode()).decode()


@pytest.mark.django_db
def test_webhook_secret_and_env_are_ciphertext_in_postgresql(make_project):
    project = make_project(webhook_secret="whsec-at-rest-1", env={"DATABASE_URL": "postgres://u:pw-at-rest-1@db/app"})
    ((secret, env),) = _raw("SELECT webhook_secret, env FROM deployments_project WHERE id = %s", [project.pk])
    assert "whsec-at-rest-1" not in secret and "pw-at-rest-1" not in env
    assert _open(secret) == "whsec-at-rest-1"
    assert json.loads(_open(env)) == {"DATABASE_URL": "postgres://u:pw-at-rest-1@db/app"}
    # Python code sees the plain values.
    project = Project.objects.get(pk=project.pk)
    assert project.webhook_secret == "whsec-at-rest-1"
    assert project.env == {"DATABASE_URL": "postgres://u:pw-at-rest-1@db/app"}
    # No secret, no ciphertext: "is one set?" stays a cheap check.
    empty = make_project(slug="empty", repository="octo/empty", webhook_secret="")
    assert _raw("SELECT webhook_secret FROM deployments_project WHERE id = %s", [empty.pk]) == [("",)]


@pytest.mark.django_db
def test_deployment_snapshot_holds_the_env_as_ciphertext(make_project, memory_runtime, user):
    project = make_project(env={"API_KEY": "snap-at-rest-1"})
    deployment = deployment_request(project=project, sha="a" * 40, actor=user)
    ((config,),) = _raw("SELECT config::text FROM deployments_deployment WHERE id = %s", [deployment.pk])
    assert "snap-at-rest-1" not in config
    stored_env = json.loads(config)["env"]
    assert json.loads(_open(stored_env)) == {"API_KEY": "snap-at-rest-1"}
    assert json.loads(config)["port"] == 8000  # the rest of the snapshot stays plain and queryable
    assert config_env(Deployment.objects.get(pk=deployment.pk).config) == {"API_KEY": "snap-at-rest-1"}


@pytest.mark.django_db
def test_a_rollback_runs_exactly_the_env_of_its_deployment(make_project, memory_runtime, user):
    project = make_project(env={"API_KEY": "first", "ONLY_IN_ONE": "1"}, keep_warm_seconds=0, watch_seconds=0)
    first = rollout_drive_until_wait(deployment_request(project=project, sha="a" * 40, actor=user))
    project_update(project=project, actor=user, env={"API_KEY": "second"})
    second = rollout_drive_until_wait(deployment_request(project=project, sha="b" * 40, actor=user))
    assert (first.state, second.state) == (State.SUCCEEDED, State.SUCCEEDED)
    assert memory_runtime.running[("hello", "2")].env == {"API_KEY": "second"}
    # Cold: revision 1 is stopped, so the rollback starts it again from its snapshot.
    assert engine.revision_retire_if_unused(project=project, revision="1", drain_seconds=0)
    rollback = rollout_drive_until_wait(deployment_rollback(project=project, number=1, actor=user))
    assert rollback.state == State.SUCCEEDED
    assert memory_runtime.running[("hello", "1")].env == {"API_KEY": "first", "ONLY_IN_ONE": "1"}
    assert rollback.config["env"] == first.config["env"]  # the same ciphertext, copied


@pytest.mark.django_db
def test_api_tokens_are_stored_as_digests(user):
    from knox.models import AuthToken

    from deployments.services_members import token_regenerate

    token = token_regenerate(user=user)
    ((digest, key),) = _raw("SELECT digest, token_key FROM knox_authtoken")
    assert token not in (digest, key) and len(digest) == 128 and token.startswith(key)
    assert AuthToken.objects.count() == 1
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/projects/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Token {token[:-1]}0" if token[-1] != "0" else f"Token {token[:-1]}1")
    assert api.get("/api/projects/").status_code == 401


@pytest.mark.django_db
def test_token_create_command_prints_a_working_token_once(user, capsys):
    call_command("token_create", "alice")
    token = capsys.readouterr().out.strip()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/projects/").status_code == 200
    call_command("token_create", "alice")  # a new one replaces it
    assert api.get("/api/projects/").status_code == 401


# --- the migration, from plain rows ----------------------------------------------------------------


def _secrets_migration(executor: MigrationExecutor) -> tuple[tuple[str, str], tuple[str, str]]:
    """(this migration, the one before it), found by name so a renumbering does not break the test."""
    (mine,) = [key for key in executor.loader.disk_migrations
               if key[0] == "deployments" and key[1].endswith("_secrets_at_rest")]
    (before,) = [p.key for p in executor.loader.graph.node_map[mine].parents if p.key[0] == "deployments"]
    return mine, before


@pytest.mark.django_db(transaction=True)
def test_migration_encrypts_plain_rows_and_keeps_drf_tokens_working_as_digests(django_user_model):
    executor = MigrationExecutor(connection)
    mine, before = _secrets_migration(executor)
    user = django_user_model.objects.create_user("legacy", password="legacy-pw-42")
    executor.migrate([before])
    try:
        old = executor.loader.project_state([before]).apps
        OldProject, OldDeployment = old.get_model("deployments", "Project"), old.get_model("deployments", "Deployment")
        project = OldProject.objects.create(name="Old", slug="old", repository="octo/old",
                                            webhook_secret="plain-whsec", env={"KEY": "plain-env"})
        OldDeployment.objects.create(project=project, number=1, commit_sha="a" * 40, trigger="api",
                                     config={"port": 8000, "env": {"KEY": "plain-env"}})
        # DRF's authtoken table as an older installation has it, with a plain key.
        legacy_key = "0123456789abcdef0123456789abcdef01234567"
        _raw("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz NOT NULL, "
             "user_id integer NOT NULL)")
        _raw("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [legacy_key, user.pk])

        # Forward to the newest state (through this migration), which the current models describe.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

        dump = repr(_raw("SELECT * FROM deployments_project")) + repr(_raw("SELECT * FROM deployments_deployment"))
        assert "plain-whsec" not in dump and "plain-env" not in dump
        assert _raw("SELECT count(*) FROM authtoken_token") == [(0,)]
        project = Project.objects.get(slug="old")
        assert project.webhook_secret == "plain-whsec" and project.env == {"KEY": "plain-env"}
        assert config_env(Deployment.objects.get(project=project).config) == {"KEY": "plain-env"}
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {legacy_key}")
        assert api.get("/api/projects/").status_code == 200

        # And back: the reverse migration restores plain rows (tokens stay hashed).
        executor = MigrationExecutor(connection)
        executor.migrate([before])
        ((secret, env),) = _raw("SELECT webhook_secret, env::text FROM deployments_project")
        assert (secret, json.loads(env)) == ("plain-whsec", {"KEY": "plain-env"})
    finally:
        _raw("DROP TABLE IF EXISTS authtoken_token")
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_malformed_key_is_refused_at_start(settings):
    from deployments.crypto import encryption_keys_check

    assert encryption_keys_check() == []
    settings.SWITCHBACK_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    (error,) = encryption_keys_check()
    assert error.id == "switchback.E001" and "not a Fernet key" in error.msg
    settings.SWITCHBACK_ENCRYPTION_KEYS = []
    (error,) = encryption_keys_check()
    assert "is not set" in error.msg
