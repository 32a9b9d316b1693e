"""Production: every secret comes from the environment; no defaults."""

import os

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

# TLS ends at the reverse proxy (ingress, load balancer), which says so in
# X-Forwarded-Proto; plain-HTTP requests are redirected to HTTPS.  Kubernetes probes
# reach the pod over plain HTTP without that header: /healthz and /readyz are exempt.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
TRUSTED_PROXY_HOPS = int(os.environ.get("SWITCHBACK_TRUSTED_PROXY_HOPS", "1"))

# HSTS: browsers keep to HTTPS for this long (one year, what preload lists ask for).  Set
# SECURE_HSTS_SECONDS=0 while first trying HTTPS out; it cannot be taken back from
# browsers that saw it.  https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
