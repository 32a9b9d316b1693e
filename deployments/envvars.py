"""Environment variables: written, never read back (their values may be secrets)."""

from __future__ import annotations

import re

from .crypto import SecretUnreadable, decrypt_json
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
        if "\x00" in str(item):  # no process environment can hold one, nor can PostgreSQL
            raise ValidationError(f"{name}: the value has a NUL character.")
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


def config_env(config: dict) -> dict[str, str]:
    """The env a deployment's config snapshot holds (one ciphertext, see Project.runtime_config).

    A dict is accepted too: rows written before encryption, until the migration converts them.
    """
    env = (config or {}).get("env") or {}
    if isinstance(env, str):
        env = decrypt_json(env)
    return {str(k): str(v) for k, v in env.items()}


def config_redact(config: dict) -> dict:
    """The snapshot for people: env names with masked values, never the ciphertext."""
    config = dict(config or {})
    if "env" in config:
        try:
            config["env"] = {name: MASK for name in config_env(config)}
        except SecretUnreadable:
            config["env"] = MASK
    return config


