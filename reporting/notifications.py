"""Notifications: what each destination kind receives, and how the JSON webhook is signed.

The JSON webhook (kind "webhook") receives, for every event it subscribed to:

    POST <url>
    Content-Type: application/json
    User-Agent: Switchback-Hookshot
    X-Switchback-Event: deployment.live
    X-Switchback-Delivery: <the report's id; the same on every retry>
    X-Switchback-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>

    {"event": "deployment.live", "delivery": "…", "created_at": "…",
     "project": {"slug", "name", "repository", "url"},
     "deployment": {"number", "sha", "state", "trigger", "url", "environment_url", "message",
                    "requested_by", "failure_reason"} | null,
     "rollback": {"to", "from", "automatic", "reason", "by"} | null,
     "text": "a sentence for people"}

Verify it as GitHub's X-Hub-Signature-256: compute the HMAC over the exact bytes received
and compare in constant time.  The Slack kind receives Slack's incoming-webhook format
({"text", "attachments"}), which Mattermost, Rocket.Chat, Discord's /slack endpoint and
others accept.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from django.utils import timezone

from deployments.models import Deployment

from . import links
from .github_reports import rollback_of, rollback_sentence


class Event:
    STARTED = "deployment.started"
    LIVE = "deployment.live"
    FAILED = "deployment.failed"
    ROLLED_BACK = "deployment.rolled_back"
    PROMOTION_WAITING = "promotion.waiting"
    PROMOTION_FIRED = "promotion.scheduled_fired"
    TEST = "test"


EVENT_CHOICES = [
    (Event.STARTED, "Deployment started"),
    (Event.LIVE, "Deployment live"),
    (Event.FAILED, "Deployment failed"),
    (Event.ROLLED_BACK, "Rolled back (by a person or a gate)"),
    (Event.PROMOTION_WAITING, "Promotion waiting for approval"),
    (Event.PROMOTION_FIRED, "Scheduled promotion fired"),
]
EVENTS = [value for value, _ in EVENT_CHOICES]
COLORS = {Event.LIVE: "#2eb886", Event.FAILED: "#d40e0d", Event.ROLLED_BACK: "#daa038",
          Event.STARTED: "#439fe0", Event.PROMOTION_WAITING: "#daa038", Event.PROMOTION_FIRED: "#439fe0"}


def body_bytes(payload: dict) -> bytes:
    """The exact bytes sent (and signed): stable across retries."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(*, secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _sentence(event: str, deployment: Deployment, rollback) -> str:
    project = deployment.project
    n, sha = deployment.number, deployment.short_sha
    return {
        Event.STARTED: f"{project.name}: deployment #{n} ({sha}) started",
        Event.LIVE: f"{project.name}: #{n} ({sha}) is live",
        Event.FAILED: f"{project.name}: deployment #{n} ({sha}) failed: {deployment.failure_reason}",
        Event.ROLLED_BACK: f"{project.name}: {rollback_sentence(rollback, number=n)}" if rollback else "",
        Event.PROMOTION_WAITING: f"{project.name}: #{n} ({sha}) holds at a canary step, waiting for someone "
                                 "to promote it",
        Event.PROMOTION_FIRED: f"{project.name}: #{n} ({sha}) reached its scheduled time; its traffic starts "
                               "to move",
    }.get(event, f"{project.name}: {event} #{n}")


def generic_payload(*, event: str, project, deployment: Deployment | None, text: str = "") -> dict:
    rollback = rollback_of(deployment) if deployment is not None else None
    data = {
        "event": event,
        "created_at": timezone.now().isoformat(),
        "project": {"slug": project.slug, "name": project.name, "repository": project.repository,
                    "url": links.project_page_url(slug=project.slug)},
        "deployment": None,
        "rollback": None,
        "text": text or (_sentence(event, deployment, rollback) if deployment is not None else ""),
    }
    if deployment is not None:
        data["deployment"] = {
            "number": deployment.number, "sha": deployment.commit_sha, "state": deployment.state,
            "trigger": deployment.trigger, "message": deployment.message[:1000],
            "url": links.deployment_page_url(slug=project.slug, number=deployment.number),
            "environment_url": links.environment_url(slug=project.slug),
            "requested_by": deployment.requested_by_name, "failure_reason": deployment.failure_reason,
        }
    if rollback is not None:
        data["rollback"] = {"to": rollback.target, "from": rollback.previous, "automatic": rollback.automatic,
                            "reason": rollback.reason, "by": "gate" if rollback.automatic else rollback.by}
    return data


def slack_payload(generic: dict) -> dict:
    """Slack's incoming-webhook message: a text for notifications, an attachment for detail."""
    deployment = generic.get("deployment") or {}
    text = generic["text"]
    link = deployment.get("url") or generic["project"]["url"]
    attachment = {"color": COLORS.get(generic["event"], "#cccccc"), "fallback": text,
                  "title": text[:250], "title_link": link, "fields": []}
    if deployment:
        attachment["fields"] = [
            {"title": "Deployment", "value": f"#{deployment['number']}", "short": True},
            {"title": "Commit", "value": deployment["sha"][:7], "short": True},
        ]
    return {"text": text, "attachments": [attachment]}


def request_for(*, kind: str, payload: dict, secret: str, delivery: str) -> tuple[bytes, dict]:
    """The body and headers to POST (the payload stored in the outbox is the generic one)."""
    if kind == "slack":
        return body_bytes(slack_payload(payload)), {"Content-Type": "application/json"}
    body = body_bytes({**payload, "delivery": delivery})
    headers = {"Content-Type": "application/json", "X-Switchback-Event": payload["event"],
               "X-Switchback-Delivery": delivery}
    if secret:
        headers["X-Switchback-Signature-256"] = signature(secret=secret, body=body)
    return body, headers
