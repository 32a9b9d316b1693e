"""A thin, typed client for the few GitHub REST calls Switchback makes, on httpx.

Why httpx and not githubkit or PyGithub: the outbox must see every attempt's status code
and rate-limit headers and decide itself when to retry (at the reset time, after a
restart, in another worker).  PyGithub sleeps through rate limits and retries inside the
call (urllib3 Retry), which would hold a worker for up to an hour; githubkit's retry and
typed models are welcome elsewhere but hide the attempt from the caller.  httpx gives
timeouts on every phase, SNI control (the notification guard pins resolved addresses),
and one client for GitHub and the notification destinations.

Every call makes exactly one request and either returns the decoded body or raises one of
three errors: `RateLimited` (retry at `retry_at`), `Transient` (retry with backoff) or
`Permanent` (a person must act: `fix` says what to do).
REST docs: https://docs.github.com/en/rest/deployments and /rest/repos/webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from django.conf import settings

API_VERSION = "2022-11-28"
SECONDARY_LIMIT_WAIT = 60  # seconds: GitHub's advice when a secondary limit gives no header


class GitHubError(Exception):
    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class Transient(GitHubError):
    """A 5xx, a timeout, a dropped connection: the same request may succeed later."""


class RateLimited(GitHubError):
    def __init__(self, message: str, *, status: int, retry_at: datetime):
        super().__init__(message, status=status)
        self.retry_at = retry_at


class Permanent(GitHubError):
    """Retrying the same request will not help.  `credentials`: the token or its rights are
    at fault (the whole project's reporting pauses); otherwise this one request is wrong."""

    def __init__(self, message: str, *, status: int | None = None, fix: str = "", credentials: bool = False):
        super().__init__(message, status=status)
        self.fix = fix
        self.credentials = credentials


def github_settings() -> dict:
    return settings.SWITCHBACK["GITHUB"]


def _timeout() -> httpx.Timeout:
    seconds = float(github_settings()["TIMEOUT_SECONDS"])
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


def rate_limit_retry_at(response: httpx.Response, *, now: datetime) -> datetime | None:
    """When a 403/429 is a rate limit, the time to try again; None when it is not one.

    Primary limit: x-ratelimit-remaining 0 and x-ratelimit-reset (epoch seconds).
    Secondary limit: retry-after (seconds), or a message naming it and no header.
    https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
    """
    if response.status_code not in (403, 429):
        return None
    retry_after = response.headers.get("retry-after", "")
    if retry_after.isdigit():
        return now + timedelta(seconds=int(retry_after))
    reset = response.headers.get("x-ratelimit-reset", "")
    if response.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(now, datetime.fromtimestamp(int(reset), tz=UTC)) + timedelta(seconds=1)
    text = response.text.lower()
    if response.status_code == 429 or "rate limit" in text:
        return now + timedelta(seconds=SECONDARY_LIMIT_WAIT)
    return None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        message = str(body.get("message", ""))
        errors = body.get("errors")
        if errors:
            message += f" ({str(errors)[:200]})"
        return message[:500]
    return str(body)[:300]


def response_check(response: httpx.Response, *, what: str, repository: str, now: datetime | None = None):
    """Raise the error a non-2xx response means; return the decoded body otherwise."""
    now = now or datetime.now(tz=UTC)
    status = response.status_code
    if 200 <= status < 300:
        return response.json() if response.content else None
    detail = _message(response)
    retry_at = rate_limit_retry_at(response, now=now)
    if retry_at is not None:
        raise RateLimited(f"{what}: rate limited by GitHub ({status}: {detail})", status=status, retry_at=retry_at)
    if status >= 500:
        raise Transient(f"{what}: GitHub answered {status} ({detail})", status=status)
    if status == 401:
        raise Permanent(f"{what}: GitHub refused the credentials (401: {detail})", status=status, credentials=True,
                        fix="The token is wrong, expired or revoked: set a new token in the project's GitHub "
                        "settings (or GITHUB_TOKEN / the App's private key for platform credentials).")
    if status == 403:
        raise Permanent(f"{what}: GitHub denied it (403: {detail})", status=status, credentials=True,
                        fix=f"Give the token access to {repository} with the permissions Deployments: write, "
                        "Commit statuses: write and Webhooks: write (classic tokens: the repo scope and "
                        "admin:repo_hook); for an App, grant them and accept the new permissions.")
    if status == 404:
        raise Permanent(f"{what}: GitHub says not found (404: {detail})", status=status, credentials=True,
                        fix=f"Check that {repository} exists and that the token (or App installation) can see it; "
                        "GitHub answers 404 to a private repository the credentials cannot read.")
    raise Permanent(f"{what}: GitHub rejected the request ({status}: {detail})", status=status,
                    fix="GitHub refused this one request (for example a commit it does not know); "
                    "later reports are not affected.")


@dataclass
class GitHubClient:
    """One repository's calls, authenticated with `token` ("Bearer", a token or an App JWT)."""

    token: str
    repository: str = ""
    base_url: str = ""
    transport: httpx.BaseTransport | None = None

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=(self.base_url or github_settings()["API_URL"]).rstrip("/"),
            timeout=_timeout(),
            transport=self.transport,
            follow_redirects=False,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                     "User-Agent": "Switchback", "Authorization": f"Bearer {self.token}"},
        )

    def call(self, method: str, path: str, *, what: str, json=None, params=None) -> httpx.Response:
        try:
            with self._client() as client:
                response = client.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise Transient(f"{what}: GitHub did not answer in time ({exc.__class__.__name__})") from exc
        except httpx.HTTPError as exc:
            raise Transient(f"{what}: could not reach GitHub ({exc.__class__.__name__}: {exc})") from exc
        response_check(response, what=what, repository=self.repository)
        return response

    def _repo(self, suffix: str) -> str:
        return f"/repos/{self.repository}{suffix}"

    # --- deployments -------------------------------------------------------------------
    def deployment_create(self, *, ref: str, environment: str, description: str, payload: dict) -> int:
        body = {"ref": ref, "environment": environment, "description": description[:140],
                "required_contexts": [], "auto_merge": False, "payload": payload,
                "production_environment": True, "transient_environment": False}
        response = self.call("POST", self._repo("/deployments"), what="Creating the GitHub deployment", json=body)
        data = response.json()
        if response.status_code != 201 or "id" not in data:
            # 202 means GitHub merged a branch instead (auto_merge); we never ask for that.
            raise Permanent(f"Creating the GitHub deployment: unexpected answer {response.status_code}",
                            status=response.status_code)
        return int(data["id"])

    def deployment_find(self, *, ref: str, environment: str, number: int) -> int | None:
        """The GitHub deployment an earlier attempt created for Switchback's #number, if any
        (a timeout or a killed worker may have hidden its 201)."""
        found = self.call("GET", self._repo("/deployments"), what="Looking for an earlier GitHub deployment",
                          params={"sha": ref, "environment": environment, "per_page": 100}).json()
        for item in found:
            if (item.get("payload") or {}).get("switchback_deployment") == number:
                return int(item["id"])
        return None

    def deployment_status_create(self, *, deployment_id: int, state: str, description: str, log_url: str,
                                 environment_url: str, environment: str) -> dict:
        body = {"state": state, "description": description[:140], "log_url": log_url,
                "environment": environment, "auto_inactive": False}
        if environment_url:
            body["environment_url"] = environment_url
        return self.call("POST", self._repo(f"/deployments/{deployment_id}/statuses"),
                         what=f"Reporting '{state}' to GitHub", json=body).json()

    def commit_status_create(self, *, sha: str, state: str, description: str, target_url: str) -> dict:
        body = {"state": state, "context": "switchback/deploy", "description": description[:140],
                "target_url": target_url}
        return self.call("POST", self._repo(f"/statuses/{sha}"), what="Setting the commit status",
                         json=body).json()

    # --- webhooks ----------------------------------------------------------------------
    def hooks_list(self) -> list[dict]:
        return self.call("GET", self._repo("/hooks"), what="Listing the repository's webhooks",
                         params={"per_page": 100}).json()

    def hook_create(self, *, config: dict, events: list[str]) -> dict:
        return self.call("POST", self._repo("/hooks"), what="Creating the webhook",
                         json={"name": "web", "active": True, "events": events, "config": config}).json()

    def hook_update(self, *, hook_id: int, config: dict, events: list[str]) -> dict:
        return self.call("PATCH", self._repo(f"/hooks/{hook_id}"), what="Updating the webhook",
                         json={"active": True, "events": events, "config": config}).json()

    def hook_deliveries(self, *, hook_id: int, cursor: str = "") -> tuple[list[dict], str]:
        """One page of recent deliveries (newest first) and the cursor of the next page."""
        params = {"per_page": 100}
        if cursor:
            params["cursor"] = cursor
        response = self.call("GET", self._repo(f"/hooks/{hook_id}/deliveries"),
                             what="Listing the webhook's deliveries", params=params)
        next_link = response.links.get("next", {}).get("url", "")
        next_cursor = httpx.URL(next_link).params.get("cursor", "") if next_link else ""
        return response.json(), next_cursor

    def delivery_redeliver(self, *, hook_id: int, delivery_id: int) -> None:
        self.call("POST", self._repo(f"/hooks/{hook_id}/deliveries/{delivery_id}/attempts"),
                  what="Asking GitHub to redeliver")

    # --- GitHub App (this client's token is the App's JWT) -----------------------------
    def repository_installation(self) -> int:
        return int(self.call("GET", self._repo("/installation"), what="Finding the App's installation")
                   .json()["id"])

    def installation_token(self, *, installation_id: int) -> tuple[str, datetime]:
        data = self.call("POST", f"/app/installations/{installation_id}/access_tokens",
                         what="Minting an installation token").json()
        expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
        return data["token"], expires
