"""Notification destinations are hostile input: where Switchback may send a request.

A project admin writes the URL, so it must not become a way into the platform's own
network (SSRF).  Checked when saved (scheme, host, port) and again at every send, after
resolving the name: every address must be public unless the operator allowed its network,
and the request then goes to the address that was checked (Host header and TLS SNI keep
the name), so a DNS answer that changes between check and connect gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from deployments.errors import ValidationError

MAX_URL_LENGTH = 2000


@dataclass(frozen=True)
class Target:
    url: str  # the URL with the checked address in place of the name
    host: str  # the name, for the Host header and SNI
    scheme: str


def _config() -> dict:
    return settings.SWITCHBACK["NOTIFY"]


def destination_url_validate(url: str) -> str:
    """Check a destination URL's shape (no network access); return it stripped."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValidationError(f"url: give an https:// URL of at most {MAX_URL_LENGTH} characters.", code="bad_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"url: not a valid URL ({exc}).", code="bad_url") from exc
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError("url: give an https:// URL.", code="bad_url")
    if parts.username or parts.password:
        raise ValidationError("url: credentials in the URL are not accepted; put secrets in the path or "
                              "use the signing secret.", code="bad_url")
    if parts.scheme == "http" and host not in {h.lower() for h in _config()["ALLOWED_HTTP_HOSTS"]}:
        raise ValidationError("url: use https (plain http is allowed only to hosts the operator lists in "
                              "NOTIFY_ALLOWED_HTTP_HOSTS).", code="bad_url")
    if port is not None and not 1 <= port <= 65535:
        raise ValidationError("url: the port must be 1-65535.", code="bad_url")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        _address_check(address, host)
    return url


def _allowed_networks() -> list:
    networks = []
    for item in _config()["ALLOWED_PRIVATE_NETWORKS"]:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    return networks


def _address_check(address, host: str) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_global and not address.is_multicast:
        return
    if any(address in network for network in _allowed_networks()):
        return
    raise ValidationError(f"url: {host} is a loopback, private or reserved address ({address}); "
                          "Switchback does not send there unless the operator allows that network "
                          "(NOTIFY_ALLOWED_PRIVATE_NETWORKS).", code="forbidden_address")


def destination_resolve(url: str) -> Target:
    """Validate, resolve and check every address; the URL to connect to, pinned to one."""
    url = destination_url_validate(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValidationError(f"url: the host {host} does not resolve ({exc}).", code="unresolvable") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        _address_check(address, host)
    pinned = addresses[0]
    netloc = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    if parts.port:
        netloc += f":{parts.port}"
    return Target(url=parts._replace(netloc=netloc).geturl(), host=host if not parts.port else f"{host}:{parts.port}",
                  scheme=parts.scheme)
