"""Environment variables: written, never read back (their values may be secrets)."""

from __future__ import annotations

import re

from .errors import ValidationError

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MASK = "********"


def env_validate(value) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError("Give an object of NAME: value pairs.")
    if len(value) > 200:
        raise ValidationError("At most 200 variables.")
    for name, item in value.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise ValidationError(f"{name!r} is not a valid variable name (letters, digits, _).")
        if not isinstance(item, str | int | float) or isinstance(item, bool) or len(str(item)) > 32_768:
            raise ValidationError(f"{name}: give a string value (at most 32 KiB).")
    return {name: str(item) for name, item in value.items()}


def env_parse_lines(text: str) -> dict:
    """`NAME=value` lines (blank lines and # comments ignored) -> dict."""
    out: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, item = line.partition("=")
        name = name.strip()
        if not sep or not ENV_NAME_RE.match(name):
            raise ValidationError(f"line {number}: write NAME=value.")
        out[name] = item
    return out


def config_redact(config: dict) -> dict:
    config = dict(config or {})
    if isinstance(config.get("env"), dict):
        config["env"] = {name: MASK for name in config["env"]}
    return config


def config_env(config: dict) -> dict[str, str]:
    """The env a deployment's config snapshot holds, as {NAME: value}: read it only to
    compare or to run, never to show (main's version decrypts the snapshot's ciphertext)."""
    env = (config or {}).get("env") or {}
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
