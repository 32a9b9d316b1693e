"""GitHub delivery parsing: pure functions, no database.

Rules come from GitHub's documentation and from real captures (see
../shared/corpora/README.md): header names arrive in any case; the signature covers the
raw body (for form encoding, the whole `payload=...` string); payloads are read
leniently (only the fields we need), and a merge is decided on `ref`, `deleted` and
`merged`, never on `base_ref` or `merge_commit_sha` alone.
https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import parse_qs

ZERO_SHA = "0" * 40


class DeliveryError(Exception):
    """The delivery itself is unusable; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def signature_matches(*, secret: str, body: bytes, header: str | None) -> bool:
    """Check `X-Hub-Signature-256: sha256=<hex>` in constant time."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def sign(*, secret: str, body: bytes) -> str:
    """The header value GitHub would send; used by tests and the benchmark."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_payload(*, body: bytes, content_type: str) -> dict:
    """Decode a JSON or form-encoded (`payload=<json>`) delivery body."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise DeliveryError("The form body is not valid UTF-8.") from exc
        values = form.get("payload")
        if not values:
            raise DeliveryError("The form body has no `payload` field.")
        raw = values[0]
    elif media_type in ("application/json", "") or media_type.endswith("+json"):
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DeliveryError("The body is not valid UTF-8.") from exc
    else:
        raise DeliveryError(
            f"Unsupported content type {media_type!r}: send application/json or "
            "application/x-www-form-urlencoded.",
            status=415,
        )
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise DeliveryError(f"The payload is not valid JSON: {exc}.") from exc
    except RecursionError as exc:  # '[' * 200000: json recurses once per level
        raise DeliveryError("The payload is nested too deeply to be a GitHub delivery.") from exc
    if not isinstance(payload, dict):
        raise DeliveryError("The payload must be a JSON object.")
    return payload


def _get(data: object, *path: str) -> object:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(value: object) -> str:
    """A string field of the payload ('' when absent or not a string).

    PostgreSQL refuses NUL in text, and git never puts one in a commit message or a name:
    a payload that has one in a field we keep is refused whole, so nothing is written.
    """
    if not isinstance(value, str):
        return ""
    if "\x00" in value:
        raise DeliveryError("The payload has a NUL character in a field Switchback keeps.")
    return value


def text_field(payload: dict, *path: str) -> str:
    """A string at `path` in the payload, '' if absent (DeliveryError if it holds a NUL)."""
    return _text(_get(payload, *path))


def repository_full_name(payload: dict) -> str:
    """`repository.full_name`, or owner + name in old payloads that lack it (2013 form)."""
    full_name = _text(_get(payload, "repository", "full_name"))
    if full_name:
        return full_name
    name = _text(_get(payload, "repository", "name"))
    owner = _text(_get(payload, "repository", "owner", "login")) or _text(
        _get(payload, "repository", "owner", "name")
    )
    return f"{owner}/{name}" if owner and name else ""


@dataclass(frozen=True)
class Decision:
    """What a delivery asks of a project with a given production branch."""

    deploy: bool
    reason: str = ""
    sha: str = ""
    ref: str = ""
    trigger: str = ""  # "merge" or "push"
    message: str = ""
    author: str = ""
    sender: str = ""


def _ignore(reason: str, **kw: str) -> Decision:
    return Decision(deploy=False, reason=reason, **kw)


def decide(*, event: str, payload: dict, production_branch: str) -> Decision:
    """Turn one delivery into 'deploy this sha' or 'ignore, because ...'."""
    sender = _text(_get(payload, "sender", "login"))
    if event == "push":
        return _decide_push(payload, production_branch, sender)
    if event == "pull_request":
        return _decide_pull_request(payload, production_branch, sender)
    if event in ("create", "delete"):
        return _ignore(f"'{event}' events never deploy (a push to the branch does).")
    return _ignore(f"Event '{event}' does not deploy.")


def _decide_push(payload: dict, branch: str, sender: str) -> Decision:
    ref = _text(payload.get("ref"))
    after = _text(payload.get("after")).lower()
    if not ref:
        return _ignore("The push names no ref.")
    if ref.startswith("refs/tags/"):
        return _ignore(f"Tag push ({ref}) does not deploy.", ref=ref)
    if ref != f"refs/heads/{branch}":
        return _ignore(f"Push to {ref}, not to the production branch '{branch}'.", ref=ref)
    if payload.get("deleted") is True or after == ZERO_SHA:
        return _ignore(f"Deletion of {ref} does not deploy.", ref=ref)
    if len(after) != 40 or not all(c in "0123456789abcdef" for c in after):
        return _ignore("The push has no valid `after` commit.", ref=ref)
    head = payload.get("head_commit") if isinstance(payload.get("head_commit"), dict) else {}
    author = _text(_get(head, "author", "username")) or _text(_get(head, "author", "name"))
    return Decision(
        deploy=True,
        sha=after,
        ref=ref,
        trigger="push",
        message=_text(head.get("message")),
        author=author or _text(_get(payload, "pusher", "name")),
        sender=sender,
    )


def _decide_pull_request(payload: dict, branch: str, sender: str) -> Decision:
    action = _text(payload.get("action"))
    pr = payload.get("pull_request") if isinstance(payload.get("pull_request"), dict) else {}
    number = payload.get("number") or pr.get("number")
    base = _text(_get(pr, "base", "ref"))
    ref = f"refs/heads/{base}" if base else ""
    if action != "closed":
        return _ignore(f"Pull request action '{action}' does not deploy.", ref=ref)
    # merge_commit_sha is set on unmerged pull requests too: only merged == true counts.
    if pr.get("merged") is not True:
        return _ignore(f"Pull request #{number} was closed without merging.", ref=ref)
    if base != branch:
        return _ignore(
            f"Pull request #{number} merged into '{base}', not the production branch '{branch}'.",
            ref=ref,
        )
    sha = _text(pr.get("merge_commit_sha")).lower()
    if len(sha) != 40:
        return _ignore(f"Pull request #{number} has no merge commit.", ref=ref)
    title = _text(pr.get("title"))
    return Decision(
        deploy=True,
        sha=sha,
        ref=ref,
        trigger="merge",
        message=f"{title} (#{number})" if title else f"Merge pull request #{number}",
        author=_text(_get(pr, "user", "login")),
        sender=_text(_get(pr, "merged_by", "login")) or sender,
    )
