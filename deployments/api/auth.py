"""API authentication: django-rest-knox's token authentication, minus one query.

knox looks through every token of the token's user on each request, to delete expired
ones.  Switchback's tokens never expire (REST_KNOX TOKEN_TTL is None: valid until
regenerated), so that sweep found nothing, at the cost of a query on every API call (one
of the round trips before a rollback switches).  With a TTL configured, or for a token
that has an expiry, knox's own behaviour applies unchanged.
"""

from __future__ import annotations

from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.settings import knox_settings


class TokenAuthentication(KnoxTokenAuthentication):
    def _cleanup_token(self, auth_token) -> bool:
        if knox_settings.TOKEN_TTL is None and auth_token.expiry is None:
            return False  # neither this token nor any other made under this setting expires
        return super()._cleanup_token(auth_token)


class TokenScheme(KnoxTokenScheme):
    """The OpenAPI security scheme: knox's, for this subclass (drf-spectacular matches
    authenticators by exact class)."""

    target_class = "deployments.api.auth.TokenAuthentication"
