# Secrets at rest (issue 9): webhook secrets and env values encrypted with
# SWITCHBACK_ENCRYPTION_KEYS, deployment snapshots keep their env as one ciphertext, and
# API tokens move from DRF's plain authtoken table to django-rest-knox's SHA-512 digests.
#
# The data steps use SQL on the raw columns: the historical model's encrypted fields would
# decrypt/encrypt on their own and hide what is being converted.

import json

import deployments.crypto
import django.core.validators
from django.db import migrations


def _table_exists(connection, name: str) -> bool:
    with connection.cursor() as cursor:
        return name in connection.introspection.table_names(cursor)


def encrypt_rows(apps, schema_editor):
    from deployments import crypto

    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, webhook_secret, env FROM deployments_project")
        for pk, secret, env in cursor.fetchall():
            if secret and not crypto.is_encrypted(secret):
                secret = crypto.encrypt(secret)
            # jsonb became text in the AlterField above: env holds the JSON text.
            if not crypto.is_encrypted(env or ""):
                env = crypto.encrypt_json(json.loads(env) if env else {})
            cursor.execute("UPDATE deployments_project SET webhook_secret = %s, env = %s WHERE id = %s",
                           [secret or "", env, pk])

    Deployment = apps.get_model("deployments", "Deployment")
    for deployment in Deployment.objects.only("id", "config").iterator():
        config = deployment.config or {}
        if isinstance(config.get("env"), dict):
            config["env"] = crypto.encrypt_json(config["env"])
            Deployment.objects.filter(pk=deployment.pk).update(config=config)

    # DRF's tokens were stored in the clear: keep them working as knox digests, then drop the plain keys.
    if _table_exists(connection, "authtoken_token"):
        from knox.crypto import hash_token
        from knox.settings import CONSTANTS

        AuthToken = apps.get_model("knox", "AuthToken")
        with connection.cursor() as cursor:
            cursor.execute("SELECT key, user_id FROM authtoken_token")
            for key, user_id in cursor.fetchall():
                AuthToken.objects.get_or_create(digest=hash_token(key), defaults={
                    "token_key": key[:CONSTANTS.TOKEN_KEY_LENGTH], "user_id": user_id, "expiry": None})
            cursor.execute("DELETE FROM authtoken_token")


def decrypt_rows(apps, schema_editor):
    from deployments import crypto

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, webhook_secret, env FROM deployments_project")
        for pk, secret, env in cursor.fetchall():
            cursor.execute("UPDATE deployments_project SET webhook_secret = %s, env = %s WHERE id = %s",
                           [crypto.decrypt(secret or ""), crypto.decrypt(env or "") or "{}", pk])
    Deployment = apps.get_model("deployments", "Deployment")
    for deployment in Deployment.objects.only("id", "config").iterator():
        config = deployment.config or {}
        if isinstance(config.get("env"), str):
            config["env"] = crypto.decrypt_json(config["env"])
            Deployment.objects.filter(pk=deployment.pk).update(config=config)
    # Hashed tokens cannot be turned back into plain ones: their owners make new ones.


class Migration(migrations.Migration):

    dependencies = [
        ("deployments", "0006_project_cluster"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [
        migrations.AlterField(
            model_name="project",
            name="env",
            field=deployments.crypto.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="project",
            name="webhook_secret",
            field=deployments.crypto.EncryptedTextField(
                blank=True, validators=[django.core.validators.MaxLengthValidator(255)]),
        ),
        migrations.RunPython(encrypt_rows, decrypt_rows),
    ]
