"""Development and the embedded default: a generated secret key kept in var/."""

import secrets

from .base import *  # noqa: F401,F403
from .base import HELP_ONLY, SECRET_KEY, SWITCHBACK_ENCRYPTION_KEYS, VAR_DIR

# DEBUG stays off (base.py): the embedded default answers errors as production does.
# Static files come straight from static/ (no collectstatic step for `manage.py up`).
WHITENOISE_USE_FINDERS = True

if HELP_ONLY:
    # `manage.py --help` writes nothing into the checkout: throwaway keys, never used to
    # sign or encrypt anything (a help run serves no request and touches no secret).
    SECRET_KEY = SECRET_KEY or secrets.token_urlsafe(50)
    if not SWITCHBACK_ENCRYPTION_KEYS:
        from cryptography.fernet import Fernet

        SWITCHBACK_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
if not SECRET_KEY:
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

if not SWITCHBACK_ENCRYPTION_KEYS:
    from cryptography.fernet import Fernet

    _enc_file = VAR_DIR / "encryption_key"
    if not _enc_file.exists():
        _enc_file.write_text(Fernet.generate_key().decode())
        _enc_file.chmod(0o600)
    SWITCHBACK_ENCRYPTION_KEYS = [_enc_file.read_text().strip()]
