"""Tests: the real PostgreSQL and Redis of this machine unless told otherwise."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/switchback")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECRET_KEY", "test-only-not-secret")
# A fixed test-only Fernet key (not secret): tests read raw columns and decrypt them.
os.environ.setdefault("SWITCHBACK_ENCRYPTION_KEYS", "dGVzdC1vbmx5LWtleS1ub3Qtc2VjcmV0LTMyYnl0ZXM=")
# The tests' throwaway git repositories live in the temp folder (file:// URLs).
os.environ.setdefault("SWITCHBACK_ALLOWED_SOURCE_ROOTS", __import__("tempfile").gettempdir())

# The example registry the Kubernetes tests deploy prebuilt images from (RFC 2606 domain).
os.environ.setdefault("SWITCHBACK_ALLOWED_IMAGE_TEMPLATES", "registry.example.com/")

# Tests never reach the real GitHub: a closed local port unless a test starts the fake.
os.environ.setdefault("GITHUB_API_URL", "http://127.0.0.1:9")

from .base import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405
