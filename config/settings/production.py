"""Production: every secret comes from the environment; no defaults."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import SECRET_KEY, SWITCHBACK_ENCRYPTION_KEYS, env_bool

if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Production settings refuse to start without it "
        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )

if not SWITCHBACK_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "SWITCHBACK_ENCRYPTION_KEYS is not set. Production settings refuse to start without it "
        "(generate one with: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())')."
    )

DEBUG = False
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
