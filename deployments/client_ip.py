"""The client's address, as the login throttle (django-axes) counts it.

Behind N reverse proxies that each append the address they saw to X-Forwarded-For, the
client is the N-th entry from the right: everything left of it was written by the client
and can be anything.  With no trusted proxy, only the TCP peer counts.  (django-ipware
was tried: its 8.x strict chain rules return no address for a spoofed header, which
would put every such caller in one shared bucket.)
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip_get(request) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return remote
    chain = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(chain) < hops:
        return remote
    candidate = chain[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
