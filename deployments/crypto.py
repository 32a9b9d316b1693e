"""Secrets at rest: values encrypted with the platform's keys (cryptography's MultiFernet).

The keys come from ``SWITCHBACK_ENCRYPTION_KEYS`` (comma-separated Fernet keys, newest
first). Encryption always uses the first key; decryption tries each, so an operator
rotates by putting a new key in front and running ``manage.py secrets_rotate``, which
re-encrypts every stored value with it. Production refuses to start without a key; the
embedded default keeps a generated one in ``var/``.

Ciphertexts are stored as text with a ``fernet:`` prefix so a plain value left from
before encryption is recognised (and re-encrypted by the rotation command).
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


class SecretUnreadable(Exception):
    """A stored value could not be decrypted with any configured key."""


@lru_cache(maxsize=1)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "SWITCHBACK_ENCRYPTION_KEYS is not set: secrets are encrypted at rest. Generate a key with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'."
        )
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"SWITCHBACK_ENCRYPTION_KEYS holds a key that is not a Fernet key: {exc}") from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.SWITCHBACK_ENCRYPTION_KEYS))


def is_encrypted(stored: str) -> bool:
    return isinstance(stored, str) and stored.startswith(PREFIX)


def encrypt(value: str) -> str:
    return PREFIX + fernet().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    if not is_encrypted(stored):
        return stored  # a value written before encryption existed; rotation encrypts it
    try:
        return fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("a stored secret cannot be decrypted with SWITCHBACK_ENCRYPTION_KEYS") from exc


def rotate(stored: str) -> str:
    """The same value, encrypted with the newest key."""
    if not is_encrypted(stored):
        return encrypt(stored)
    return PREFIX + fernet().rotate(stored[len(PREFIX):].encode()).decode()


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet ciphertext; Python code sees the plain value.

    Blank stays blank (no ciphertext for "no secret"), so "is one set?" is a cheap check.
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


class EncryptedJSONField(models.TextField):
    """A JSON value (dict/list/str...) stored as one Fernet ciphertext."""

    def from_db_value(self, value, expression, connection):
        import json

        if value is None or value == "":
            return None if value is None else {}
        return json.loads(decrypt(value))

    def to_python(self, value):
        import json

        if isinstance(value, str):
            try:
                return json.loads(decrypt(value))
            except ValueError:
                return value
        return value

    def get_prep_value(self, value):
        import json

        if value is None:
            return None
        return encrypt(json.dumps(value, sort_keys=True))
