"""A fake of the GitHub REST API's deployments, statuses, webhooks and App endpoints.

It records every request and answers with GitHub's documented shapes and codes
(https://docs.github.com/en/rest): 201 on creation, 401 "Bad credentials", 404 for a
repository the token cannot see, 422 for an unknown ref or state, and rate limits as
GitHub sends them (403 with x-ratelimit-remaining 0 and x-ratelimit-reset; 429 or 403
with retry-after for secondary limits).  The App flow checks the JWT's RS256 signature
with the App's public key, then mints installation tokens that it accepts afterwards.

Faults are scripted per (method, path pattern): a response to give `times` times, or a
hang that holds the request until released (at most `hang_seconds`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt

DEPLOYMENT_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
COMMIT_STATES = {"error", "failure", "pending", "success"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: object
    status: int = 0


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int = 500
    headers: dict = field(default_factory=dict)
    body: object = None
    times: int = 1
    hang: bool = False


class GitHubError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        self.body = {"message": message, "documentation_url": "https://docs.github.com/rest", **extra}


class FakeGitHub:
    def __init__(self, *, repositories=("octo/hello",), tokens=("good-token",), hang_seconds: float = 30.0):
        self.lock = threading.RLock()
        self.repositories = set(repositories)
        self.tokens = set(tokens)
        self.commits: set[str] | None = None  # None: every 40-hex ref exists
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.hang_seconds = hang_seconds
        self.release = threading.Event()
        self.hanging = 0  # requests being held right now
        self.next_id = 1000
        self.deployments: dict[int, dict] = {}
        self.statuses: dict[int, list[dict]] = {}
        self.commit_statuses: list[dict] = []
        self.hooks: dict[str, list[dict]] = {}
        self.deliveries: dict[int, list[dict]] = {}  # hook id -> newest first
        self.redelivered: list[tuple[int, int]] = []  # (hook id, delivery id)
        self.app_id = ""
        self.app_public_key = None
        self.installations: dict[str, int] = {}  # repository -> installation id
        self.installation_tokens: dict[str, datetime] = {}
        self.rate_remaining = 5000
        self.delay = 0.0  # seconds every answer takes (a slow GitHub)
        self._http: ThreadingHTTPServer | None = None
        self._local = threading.local()  # per request: the Link header of a page

    # --- control ---------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._http:
            self._http.shutdown()
            self._http.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def fail(self, method: str, pattern: str, status: int, *, headers=None, body=None, times: int = 1) -> None:
        with self.lock:
            self.faults.append(Fault(method, re.compile(pattern), status, headers or {},
                                     body if body is not None else {"message": "scripted failure"}, times))

    def hang(self, method: str, pattern: str, *, times: int = 1) -> None:
        with self.lock:
            self.release.clear()
            self.faults.append(Fault(method, re.compile(pattern), times=times, hang=True))

    def rate_limit(self, method: str, pattern: str, *, reset_in: int = 60, status: int = 403, times: int = 1) -> int:
        """A primary rate limit: remaining 0 and the reset time (epoch seconds); returns the reset."""
        reset = int(datetime.now(tz=UTC).timestamp()) + reset_in
        self.fail(method, pattern, status, times=times,
                  headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                           "x-ratelimit-reset": str(reset), "x-ratelimit-resource": "core"},
                  body={"message": "API rate limit exceeded for installation ID 1.",
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
        return reset

    def use_app(self, *, app_id: str, public_key, installations: dict[str, int]) -> None:
        self.app_id, self.app_public_key, self.installations = app_id, public_key, dict(installations)

    def add_delivery(self, *, hook_id: int, guid: str, status_code: int, event: str = "push",
                     delivered_at: datetime | None = None, redelivery: bool = False) -> dict:
        with self.lock:
            self.next_id += 1
            delivery = {
                "id": self.next_id, "guid": guid, "delivered_at": (delivered_at or datetime.now(tz=UTC))
                .strftime("%Y-%m-%dT%H:%M:%SZ"), "redelivery": redelivery, "duration": 0.27,
                "status": "OK" if 200 <= status_code < 300 else "Invalid HTTP Response: 502",
                "status_code": status_code, "event": event, "action": None, "installation_id": None,
                "repository_id": 1, "throttled_at": None,
            }
            self.deliveries.setdefault(hook_id, []).insert(0, delivery)
            return delivery

    def calls(self, method: str | None = None, pattern: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and re.search(pattern, r.path)]

    def sequence(self) -> list[tuple]:
        """What reached GitHub's state, in order: ("deployment", sha, env) and ("status", n, state)."""
        out = []
        with self.lock:
            order = {d: i for i, d in enumerate(sorted(self.deployments))}
            for r in self.requests:
                if r.status != 201:
                    continue
                if r.method == "POST" and re.fullmatch(r"/repos/[^/]+/[^/]+/deployments", r.path):
                    out.append(("deployment", r.body["ref"], r.body["environment"]))
                m = re.fullmatch(r"/repos/[^/]+/[^/]+/deployments/(\d+)/statuses", r.path)
                if r.method == "POST" and m:
                    out.append(("status", order[int(m.group(1))], r.body["state"]))
        return out

    # --- dispatch --------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers: dict, body) -> tuple[int, dict, object]:
        record = Recorded(method, path, query, headers, body)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.requests.append(record)
            fault = next((f for f in self.faults if f.times > 0 and f.method == method
                          and f.pattern.search(path)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None and fault.hang:
            with self.lock:
                self.hanging += 1
            self.release.wait(self.hang_seconds)
            with self.lock:
                self.hanging -= 1
        elif fault is not None:
            record.status = fault.status
            return fault.status, fault.headers, fault.body
        try:
            status, body = self._route(method, path, query, headers, body)
        except GitHubError as exc:
            record.status = exc.status
            return exc.status, exc.headers, exc.body
        record.status = status
        return status, self._rate_headers(), body

    def _rate_headers(self) -> dict:
        reset = int((datetime.now(tz=UTC) + timedelta(hours=1)).timestamp())
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(self.rate_remaining),
                "x-ratelimit-reset": str(reset), "x-ratelimit-used": "1", "x-ratelimit-resource": "core"}

    def _bearer(self, headers: dict) -> str:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token:
            raise GitHubError(401, "Requires authentication")
        return token

    def _authenticate(self, headers: dict) -> None:
        token = self._bearer(headers)
        if token in self.tokens:
            return
        expires = self.installation_tokens.get(token)
        if expires is not None and expires > datetime.now(tz=UTC):
            return
        raise GitHubError(401, "Bad credentials")

    def _app(self, headers: dict) -> None:
        token = self._bearer(headers)
        if self.app_public_key is None:
            raise GitHubError(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(token, self.app_public_key, algorithms=["RS256"], options={"require": ["iat", "exp",
                                                                                                       "iss"]})
        except jwt.PyJWTError as exc:
            raise GitHubError(401, f"A JSON web token could not be decoded ({exc})") from None
        if str(claims["iss"]) != self.app_id or claims["exp"] - claims["iat"] > 600:
            raise GitHubError(401, "'Issuer' claim ('iss') must be an Integer")

    def _route(self, method: str, path: str, query: dict, headers: dict, body) -> tuple[int, object]:
        m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if m and method == "POST":
            self._app(headers)
            if int(m.group(1)) not in self.installations.values():
                raise GitHubError(404, "Not Found")
            with self.lock:
                self.next_id += 1
                token = f"ghs_installation{self.next_id}"
                expires = datetime.now(tz=UTC) + timedelta(hours=1)
                self.installation_tokens[token] = expires
            return 201, {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "permissions": {"deployments": "write", "statuses": "write"}, "repository_selection": "all"}
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not m:
            raise GitHubError(404, "Not Found")
        repo, rest = m.group(1), m.group(2) or ""
        if rest == "/installation" and method == "GET":
            self._app(headers)
            if repo not in self.installations:
                raise GitHubError(404, "Not Found")
            return 200, {"id": self.installations[repo], "app_id": int(self.app_id or 0), "target_type": "User"}
        self._authenticate(headers)
        if repo not in self.repositories:
            raise GitHubError(404, "Not Found")
        return self._repo_route(method, repo, rest, query, body)

    def _repo_route(self, method, repo, rest, query, body):
        with self.lock:
            if rest == "/deployments" and method == "POST":
                ref = (body or {}).get("ref", "")
                if not re.fullmatch(r"[0-9a-f]{40}", ref) or (self.commits is not None and ref not in self.commits):
                    raise GitHubError(422, f"No ref found for: {ref}")
                self.next_id += 1
                deployment = {"id": self.next_id, "node_id": f"DE_{self.next_id}", "sha": ref, "ref": ref,
                              "task": "deploy", "payload": body.get("payload", {}),
                              "environment": body.get("environment", "production"),
                              "description": body.get("description"), "creator": {"login": "switchback"},
                              "created_at": _now(), "updated_at": _now(),
                              "url": f"https://api.github.com/repos/{repo}/deployments/{self.next_id}",
                              "statuses_url": f"https://api.github.com/repos/{repo}/deployments/{self.next_id}/statuses",
                              "repository_url": f"https://api.github.com/repos/{repo}",
                              "transient_environment": False, "production_environment": True}
                self.deployments[self.next_id] = deployment
                self.statuses[self.next_id] = []
                return 201, deployment
            if rest == "/deployments" and method == "GET":
                found = [d for d in self.deployments.values()
                         if d["sha"] == (query.get("sha") or [d["sha"]])[0]
                         and d["environment"] == (query.get("environment") or [d["environment"]])[0]]
                return 200, sorted(found, key=lambda d: -d["id"])
            m = re.fullmatch(r"/deployments/(\d+)/statuses", rest)
            if m and method == "POST":
                number = int(m.group(1))
                if number not in self.deployments:
                    raise GitHubError(404, "Not Found")
                state = (body or {}).get("state")
                if state not in DEPLOYMENT_STATES:
                    raise GitHubError(422, "Validation Failed", errors=[{"resource": "DeploymentStatus",
                                                                         "field": "state", "code": "invalid"}])
                self.next_id += 1
                status = {"id": self.next_id, "state": state, "description": body.get("description", ""),
                          "environment": body.get("environment", ""), "log_url": body.get("log_url", ""),
                          "target_url": body.get("log_url", ""), "environment_url": body.get("environment_url", ""),
                          "created_at": _now(), "updated_at": _now(), "creator": {"login": "switchback"},
                          "deployment_url": f"https://api.github.com/repos/{repo}/deployments/{number}"}
                self.statuses[number].append(status)
                return 201, status
            m = re.fullmatch(r"/statuses/([0-9a-f]{40})", rest)
            if m and method == "POST":
                if (body or {}).get("state") not in COMMIT_STATES:
                    raise GitHubError(422, "Validation Failed")
                self.next_id += 1
                status = {"id": self.next_id, "sha": m.group(1), **body}
                self.commit_statuses.append(status)
                return 201, status
            if rest == "/hooks" and method == "GET":
                return 200, self.hooks.get(repo, [])
            if rest == "/hooks" and method == "POST":
                config = (body or {}).get("config") or {}
                if not config.get("url"):
                    raise GitHubError(422, "Validation Failed")
                self.next_id += 1
                hook = {"id": self.next_id, "type": "Repository", "name": "web", "active": True,
                        "events": body.get("events", ["push"]),
                        "config": {**config, "secret": "********" if config.get("secret") else None},
                        "created_at": _now(), "updated_at": _now()}
                self.hooks.setdefault(repo, []).append(hook)
                self.secrets = getattr(self, "secrets", {})
                self.secrets[hook["id"]] = config.get("secret", "")
                return 201, hook
            m = re.fullmatch(r"/hooks/(\d+)", rest)
            if m and method == "PATCH":
                hook = next((h for h in self.hooks.get(repo, []) if h["id"] == int(m.group(1))), None)
                if hook is None:
                    raise GitHubError(404, "Not Found")
                config = (body or {}).get("config") or {}
                hook["config"].update({**config, "secret": "********" if config.get("secret") else None})
                hook["events"] = body.get("events", hook["events"])
                self.secrets = getattr(self, "secrets", {})
                self.secrets[hook["id"]] = config.get("secret", "")
                return 200, hook
            m = re.fullmatch(r"/hooks/(\d+)/deliveries", rest)
            if m and method == "GET":
                hook_id = int(m.group(1))
                items = self.deliveries.get(hook_id, [])
                per_page = int((query.get("per_page") or ["30"])[0])
                start = int((query.get("cursor") or ["0"])[0] or 0)
                page = items[start:start + per_page]
                self._local.link = (f'<https://api.github.com/repos/{repo}/hooks/{hook_id}/deliveries?per_page={per_page}'
                              f'&cursor={start + per_page}>; rel="next"') if start + per_page < len(items) else ""
                return 200, page
            m = re.fullmatch(r"/hooks/(\d+)/deliveries/(\d+)/attempts", rest)
            if m and method == "POST":
                hook_id, delivery_id = int(m.group(1)), int(m.group(2))
                if not any(d["id"] == delivery_id for d in self.deliveries.get(hook_id, [])):
                    raise GitHubError(404, "Not Found")
                self.redelivered.append((hook_id, delivery_id))
                return 202, {}
        raise GitHubError(404, "Not Found")


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        parsed = urlparse(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {}, {"message": "Problems parsing JSON"})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._local.link = ""
        status, extra, answer = self.fake.handle(self.command, parsed.path, parse_qs(parsed.query), headers, body)
        if self.fake._local.link:
            extra = {**extra, "link": self.fake._local.link}
        self._send(status, extra, answer)

    def _send(self, status: int, headers: dict, body) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve
