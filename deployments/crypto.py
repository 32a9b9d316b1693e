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

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


class SecretUnreadable(Exception):
    """A stored value could not be decrypted with any configured key."""


@lru_cache(maxsize=1)
def _fernets(keys: tuple[str, ...]) -> tuple[Fernet, ...]:
    if not keys:
        raise ImproperlyConfigured(
            "SWITCHBACK_ENCRYPTION_KEYS is not set: secrets are encrypted at rest. Generate a key with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'."
        )
    try:
        return tuple(Fernet(key.encode()) for key in keys)
    except ValueError as exc:
        raise ImproperlyConfigured(f"SWITCHBACK_ENCRYPTION_KEYS holds a key that is not a Fernet key: {exc}") from exc


def _configured() -> tuple[Fernet, ...]:
    return _fernets(tuple(k for k in settings.SWITCHBACK_ENCRYPTION_KEYS if k))


def fernet() -> MultiFernet:
    return MultiFernet(list(_configured()))


@checks.register(checks.Tags.security)
def encryption_keys_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A malformed key fails at start (`manage.py check`, migrate, runserver), not at the first secret."""
    try:
        _configured()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="switchback.E001")]
    return []


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


def encrypt_json(value) -> str:
    """A JSON value as one ciphertext (sorted keys: equal values give equal plaintexts)."""
    return encrypt(json.dumps(value, sort_keys=True))


def decrypt_json(stored: str):
    return json.loads(decrypt(stored))


def is_current(stored: str) -> bool:
    """True when the value is encrypted with the newest key (rotation leaves it alone)."""
    if not is_encrypted(stored):
        return False
    newest = _configured()[0]
    try:
        newest.decrypt(stored[len(PREFIX):].encode())
    except InvalidToken:
        return False
    return True


def rotate(stored: str) -> str:
    """The same value, encrypted with the newest key."""
    if not is_encrypted(stored):
        return encrypt(stored)
    try:
        return PREFIX + fernet().rotate(stored[len(PREFIX):].encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("a stored secret cannot be decrypted with SWITCHBACK_ENCRYPTION_KEYS") from exc


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
        if value is None:
            return None
        if value == "":
            return {}
        return decrypt_json(value)

    def to_python(self, value):
        if isinstance(value, str):
            try:
                return decrypt_json(value)
            except ValueError:
                return value
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        return encrypt_json(value)

    def value_to_string(self, obj):
        # dumpdata writes the ciphertext, never the plain value.
        return self.get_prep_value(self.value_from_object(obj))
