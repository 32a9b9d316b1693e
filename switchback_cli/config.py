"""Where `switchback login` keeps the URL and token: the user's config folder, mode 0600.

The folder is platformdirs' user config dir (`~/.config/switchback` on Linux), or
`$SWITCHBACK_CONFIG_DIR`.  `SWITCHBACK_URL` and `SWITCHBACK_TOKEN` override the file, so a
CI job needs no login (and the token never appears in a command line or shell history).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from .errors import CliError

FILE_NAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str


def config_dir() -> Path:
    override = os.environ.get("SWITCHBACK_CONFIG_DIR")
    return Path(override) if override else platformdirs.user_config_path("switchback")


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


def url_normalize(url: str) -> str:
    """`https://host[:port][/prefix]` without a trailing slash; anything else is refused."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"Not an http(s) URL: {url!r} (e.g. https://switchback.example.com).")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise CliError("Give the URL without credentials, query or fragment (the token is asked separately).")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def token_check(token: str) -> str:
    token = token.strip()
    if not token or any(c.isspace() or not c.isprintable() for c in token) or len(token) > 500:
        raise CliError("That does not look like an API token (make one on the dashboard's Account page "
                       "or with `manage.py token_create USER`).")
    return token


def credentials_save(*, url: str, token: str) -> Path:
    """Write atomically, readable by the user alone (0600 in a 0700 folder)."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / FILE_NAME
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".credentials-")  # created 0600
    try:
        with os.fdopen(fd, "w") as out:
            json.dump({"url": url, "token": token}, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def credentials_forget() -> bool:
    path = credentials_path()
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def credentials_load() -> Credentials:
    env_url, env_token = os.environ.get("SWITCHBACK_URL", ""), os.environ.get("SWITCHBACK_TOKEN", "")
    stored: dict = {}
    path = credentials_path()
    if not (env_url and env_token) and path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"Cannot read {path} ({exc}); run `switchback login URL` again.") from exc
        if not isinstance(stored, dict):
            stored = {}
    url, token = env_url or stored.get("url", ""), env_token or stored.get("token", "")
    if not url or not token:
        raise CliError("Not logged in: run `switchback login URL` (or set SWITCHBACK_URL and SWITCHBACK_TOKEN).")
    return Credentials(url=url_normalize(str(url)), token=token_check(str(token)))
