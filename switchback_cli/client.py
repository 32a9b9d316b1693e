"""The REST API over httpx: one place that turns answers into data or a one-line error."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx

from . import __version__
from .config import Credentials
from .errors import ApiError, CliError

TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"]
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return f"HTTP {response.status_code} {response.reason_phrase} from {response.request.url.path}"


def seg(value: str | int) -> str:
    """A path segment, quoted: a project name typed by a person never becomes `../`."""
    return quote(str(value), safe="")


class Api:
    def __init__(self, credentials: Credentials, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base = credentials.url
        self.http = httpx.Client(
            base_url=self.base, timeout=TIMEOUT, transport=transport, follow_redirects=False,
            headers={"Authorization": f"Token {credentials.token}", "Accept": "application/json",
                     "User-Agent": f"switchback-cli/{__version__}"},
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs):
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(f"Cannot reach {self.base}: {exc or type(exc).__name__}") from exc
        if response.status_code == 401:
            raise ApiError(f"{_message(response)} Run `switchback login {self.base}` with a valid token.",
                           status=401, error="not_authenticated")
        if response.is_redirect:
            raise ApiError(f"{self.base} redirects to {response.headers.get('location', '?')}: "
                           "log in with that URL instead.", status=response.status_code)
        if response.status_code >= 400:
            error = ""
            try:
                error = str(response.json().get("error", ""))
            except (ValueError, AttributeError):
                pass
            raise ApiError(_message(response), status=response.status_code, error=error)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(f"{self.base}{path} did not answer JSON: is this a Switchback URL?") from exc

    def get(self, path: str, **params):
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json=None, **params):
        return self.request("POST", path, json=json, params=params or None)

    def pages(self, path: str, *, limit: int | None = None) -> Iterator[dict]:
        """The items of a paginated list, following `next` (on this server only)."""
        seen = 0
        page = self.get(path)
        while True:
            items = page["results"] if isinstance(page, dict) and "results" in page else page
            for item in items or []:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            following = page.get("next") if isinstance(page, dict) else None
            if not following:
                return
            parts = urlsplit(following)
            page = self.get(parts.path + (f"?{parts.query}" if parts.query else ""))

    # --- the endpoints ------------------------------------------------------------------

    def projects(self) -> list[dict]:
        return list(self.pages("/api/projects/"))

    def project(self, slug: str) -> dict:
        return self.get(f"/api/projects/{seg(slug)}/")

    def deployments(self, slug: str, *, limit: int | None = None) -> list[dict]:
        return list(self.pages(f"/api/projects/{seg(slug)}/deployments/", limit=limit))

    def deployment(self, slug: str, number: int) -> dict:
        return self.get(f"/api/projects/{seg(slug)}/deployments/{int(number)}/")

    def rollout(self, slug: str, number: int, *, after: int = 0) -> dict:
        return self.get(f"/api/projects/{seg(slug)}/deployments/{int(number)}/rollout/", after=after)

    def rollback_targets(self, slug: str) -> list[dict]:
        return self.get(f"/api/projects/{seg(slug)}/rollback-targets/")

    def deploy(self, slug: str, *, sha: str, message: str | None = None) -> dict:
        body = {"sha": sha} if message is None else {"sha": sha, "message": message}
        return self.post(f"/api/projects/{seg(slug)}/deployments/", json=body)

    def rollback_preview(self, slug: str, number: int) -> dict:
        return self.request("POST", f"/api/projects/{seg(slug)}/deployments/{int(number)}/rollback/?preview",
                            json={})

    def rollback(self, slug: str, number: int, *, pin: bool = False) -> dict:
        return self.post(f"/api/projects/{seg(slug)}/deployments/{int(number)}/rollback/", json={"pin": pin})

    def action(self, slug: str, number: int, name: str) -> dict:
        return self.post(f"/api/projects/{seg(slug)}/deployments/{int(number)}/{name}/")
