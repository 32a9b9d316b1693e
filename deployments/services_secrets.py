"""Key rotation: re-encrypt every stored secret with the newest of SWITCHBACK_ENCRYPTION_KEYS.

What is encrypted: every column of an EncryptedTextField / EncryptedJSONField, found on
the installed models (so a new secret field is rotated without being listed here), and the
env ciphertext inside each deployment's config snapshot.

Each value is replaced with a compare-and-set on its old ciphertext, so a value written
meanwhile (already with the newest key) is never overwritten with an older one. A value
already under the newest key is left alone: a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.apps import apps
from django.db import connection

from . import crypto
from .models import Deployment


@dataclass
class RotationReport:
    rotated: dict[str, int] = field(default_factory=dict)  # "table.column" -> values re-encrypted
    current: dict[str, int] = field(default_factory=dict)  # already under the newest key
    unreadable: list[str] = field(default_factory=list)  # "table.column #pk": no configured key opens it

    def count(self, where: str, *, rotated: bool) -> None:
        bucket = self.rotated if rotated else self.current
        bucket[where] = bucket.get(where, 0) + 1


def _encrypted_columns():
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, crypto.EncryptedTextField | crypto.EncryptedJSONField):
                yield model, model_field


def _rotate_column(model, model_field, report: RotationReport) -> None:
    qn = connection.ops.quote_name
    table, column, pk = (qn(model._meta.db_table), qn(model_field.column), qn(model._meta.pk.column))
    where = f"{model._meta.db_table}.{model_field.column}"
    report.rotated.setdefault(where, 0)
    with connection.cursor() as cursor:
        # Raw values: the field would decrypt them, and rotation must see the ciphertext.
        cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL AND {column} <> ''")
        rows = cursor.fetchall()
    for pk_value, stored in rows:
        if crypto.is_current(stored):
            report.count(where, rotated=False)
            continue
        try:
            new = crypto.rotate(stored)
        except crypto.SecretUnreadable:
            report.unreadable.append(f"{where} #{pk_value}")
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s",
                           [new, pk_value, stored])
        report.count(where, rotated=True)


def _rotate_snapshots(report: RotationReport) -> None:
    where = f"{Deployment._meta.db_table}.config.env"
    report.rotated.setdefault(where, 0)
    for pk_value, config in Deployment.objects.values_list("pk", "config").iterator(chunk_size=500):
        stored = (config or {}).get("env")
        if not stored:
            continue
        if isinstance(stored, dict):  # a snapshot from before encryption
            new = crypto.encrypt_json(stored)
        elif crypto.is_current(stored):
            report.count(where, rotated=False)
            continue
        else:
            try:
                new = crypto.rotate(stored)
            except crypto.SecretUnreadable:
                report.unreadable.append(f"{where} #{pk_value}")
                continue
        # Snapshots are written once, at creation; the old value in the filter still makes this a
        # compare-and-set, like the columns above.
        Deployment.objects.filter(pk=pk_value, config__env=stored).update(config={**config, "env": new})
        report.count(where, rotated=True)


def secrets_rotate() -> RotationReport:
    """Re-encrypt every stored secret with the newest key; safe to run again and while serving."""
    report = RotationReport()
    for model, model_field in _encrypted_columns():
        _rotate_column(model, model_field, report)
    _rotate_snapshots(report)
    return report
