"""Which credentials a project reports with: its own token, the platform's token, or a
GitHub App installation token (minted with the App's JWT and cached until it expires)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import jwt
from django.utils import timezone

from .github_client import GitHubClient, Permanent, github_settings
from .models import GitHubConnection, InstallationToken

TOKEN_MARGIN = timedelta(minutes=5)  # mint a new one this long before the old one expires


def app_private_key() -> str:
    config = github_settings()
    if config.get("APP_PRIVATE_KEY"):
        return config["APP_PRIVATE_KEY"]
    if config.get("APP_PRIVATE_KEY_FILE"):
        return Path(config["APP_PRIVATE_KEY_FILE"]).read_text()
    return ""


def app_jwt(*, now: float | None = None) -> str:
    """The App's JWT (RS256, iss = App id): backdated 60 s for clock drift, 9 minutes long
    (GitHub's maximum is 10).  https://docs.github.com/en/apps/creating-github-apps/
    authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app"""
    app_id, key = github_settings().get("APP_ID", ""), app_private_key()
    if not app_id or not key:
        raise Permanent("No GitHub App is configured.", credentials=True,
                        fix="Set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (or GITHUB_APP_PRIVATE_KEY_FILE), "
                        "or choose a token for this project.")
    issued = int(now if now is not None else time.time()) - 60
    try:
        return jwt.encode({"iat": issued, "exp": issued + 600 - 60, "iss": str(app_id)}, key, algorithm="RS256")
    except (ValueError, TypeError) as exc:
        raise Permanent("The GitHub App's private key cannot sign a JWT.", credentials=True,
                        fix="Set GITHUB_APP_PRIVATE_KEY to the PEM private key GitHub generated for the App.") from exc


def installation_token_get(*, connection: GitHubConnection) -> str:
    """A cached installation token, or a fresh one (the installation found through the App
    when the project names none)."""
    app = GitHubClient(token=app_jwt(), repository=connection.project.repository)
    installation_id = connection.installation_id
    if installation_id is None:
        installation_id = app.repository_installation()
        GitHubConnection.objects.filter(pk=connection.pk).update(installation_id=installation_id)
        connection.installation_id = installation_id
    cached = InstallationToken.objects.filter(installation_id=installation_id).first()
    if cached is not None and cached.expires_at - TOKEN_MARGIN > timezone.now():
        return cached.token
    token, expires_at = app.installation_token(installation_id=installation_id)
    InstallationToken.objects.update_or_create(installation_id=installation_id,
                                               defaults={"token": token, "expires_at": expires_at})
    return token


def github_client_for(*, connection: GitHubConnection) -> GitHubClient:
    repository = connection.project.repository
    if connection.auth == GitHubConnection.Auth.APP:
        return GitHubClient(token=installation_token_get(connection=connection), repository=repository)
    token = connection.token if connection.auth == GitHubConnection.Auth.TOKEN else github_settings()["TOKEN"]
    if not token:
        where = "this project's GitHub settings" if connection.auth == GitHubConnection.Auth.TOKEN else "GITHUB_TOKEN"
        raise Permanent("No GitHub token is set.", credentials=True,
                        fix=f"Set a token in {where}, or choose another kind of credentials.")
    return GitHubClient(token=token, repository=repository)
