"""Header and cookie names (and values) a project may route on: pure checks shared by the
domain's validators (deployments.routing) and the runtimes, which check again right before
a router sees them."""

from __future__ import annotations

import re

# Header and cookie names a project may route on: RFC 7230 tokens
# (https://www.rfc-editor.org/rfc/rfc7230#section-3.2.6), narrowed to the characters every
# router takes as a plain word (HAProxy configuration, ingress-nginx annotations, Gateway
# API header names): no quote, '#', '|', '%' or other character a configuration language
# treats specially.  Values: a short safe charset.  Project admins set them: both are
# attacker-controlled, checked here again right before any router sees them.
ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RFC7230_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
ROUTE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,62}$")
# Headers the platform or HTTP itself owns: routing on them would be a trap or a bypass.
RESERVED_HEADERS = frozenset({
    "host", "cookie", "set-cookie", "connection", "content-length", "transfer-encoding", "te", "trailer",
    "upgrade", "keep-alive", "proxy-connection", "proxy-authorization", "authorization", "expect",
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "via",
})
STICKY_COOKIE = "sb_client"  # the platform's own client-id cookie on the single host


def route_name_check(name: str, *, what: str = "header") -> str:
    if not isinstance(name, str) or not RFC7230_TOKEN.match(name) or not ROUTE_NAME.match(name):
        raise ValueError(f"{what} name {name!r}: use 1-63 letters, digits, '-', '_' or '.', "
                         "starting with a letter or digit")
    if what == "header" and name.lower() in RESERVED_HEADERS:
        raise ValueError(f"header {name!r} is managed by HTTP or the platform; choose another, e.g. X-Canary")
    if what == "cookie" and name.lower() == STICKY_COOKIE:
        raise ValueError(f"cookie {name!r} is the platform's own; choose another")
    return name


def route_value_check(value: str) -> str:
    if not isinstance(value, str) or not ROUTE_VALUE.match(value):
        raise ValueError(f"value {value!r}: use 1-63 letters, digits, '.', '_', '~' or '-', "
                         "starting with a letter or digit")
    return value


def _refuse(check, value: str, what: str) -> None:
    from django.core.exceptions import ValidationError

    try:
        check(value)
    except ValueError as exc:
        raise ValidationError(f"Not a {what} you can route on: {exc}.") from exc


# Django validators (module-level functions: migrations name them).
def canary_header_validator(value: str) -> None:
    if value:
        _refuse(lambda v: route_name_check(v, what="header"), value, "header")


def canary_cookie_validator(value: str) -> None:
    if value:
        _refuse(lambda v: route_name_check(v, what="cookie"), value, "cookie")


def canary_value_validator(value: str) -> None:
    _refuse(route_value_check, value, "header value")
