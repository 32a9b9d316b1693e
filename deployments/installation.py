"""This installation's id: generated once, kept in the database (models.Installation)."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction

from .models import Installation


def installation_id() -> str:
    """The id every container and HAProxy backend of this installation carries."""
    row = Installation.objects.order_by("pk").first()
    if row is not None:
        return row.instance_id
    try:
        with transaction.atomic():
            # pk 1: two processes starting at once make one row, not two.
            row, _ = Installation.objects.get_or_create(pk=1, defaults={"instance_id": secrets.token_hex(4)})
    except IntegrityError:
        row = Installation.objects.get(pk=1)
    return row.instance_id
