"""GitHub intake: one delivery in, at most one queued deployment out.

The delivery row and the deployment are written in one transaction; the task is
enqueued on commit (and by the outbox sweep if the broker was down), so the webhook
answers in milliseconds and no merge is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.urls import reverse

from deployments.models import Project, Trigger
from deployments.services import deployment_from_webhook

from . import github
from .models import WebhookDelivery

logger = logging.getLogger(__name__)


@dataclass
class Answer:
    status: int
    body: dict = field(default_factory=dict)


def _error(status: int, message: str, code: str) -> Answer:
    return Answer(status, {"error": code, "message": message})


def delivery_receive(*, headers, body: bytes, content_type: str) -> Answer:
    """Handle one POST to /webhooks/github/.  `headers` is case-insensitive (HttpHeaders)."""
    event = (headers.get("X-GitHub-Event") or "").strip()
    delivery_id = (headers.get("X-GitHub-Delivery") or "").strip()
    if not event:
        return _error(400, "Missing X-GitHub-Event header: this endpoint takes GitHub webhook "
                      "deliveries.", "missing_event")
    if not delivery_id:
        return _error(400, "Missing X-GitHub-Delivery header.", "missing_delivery")
    if len(delivery_id) > 100:
        return _error(400, "X-GitHub-Delivery is too long.", "bad_delivery")
    try:
        payload = github.parse_payload(body=body, content_type=content_type)
    except github.DeliveryError as exc:
        return _error(exc.status, exc.message, "bad_payload")

    full_name = github.repository_full_name(payload)
    if not full_name:
        if event == "ping":  # an organisation hook's ping names no repository
            return Answer(200, {"status": "pong", "message": "Ping received; no repository named."})
        return _error(400, "The payload names no repository (repository.full_name).", "no_repository")
    candidates = list(Project.objects.filter(repository__iexact=full_name).order_by("id"))
    if not candidates:
        return _error(404, f"No project is connected to the repository '{full_name}'.",
                      "unknown_repository")
    signature = headers.get("X-Hub-Signature-256")
    projects = [p for p in candidates
                if github.signature_matches(secret=p.webhook_secret, body=body, header=signature)]
    if not projects:
        message = ("Missing X-Hub-Signature-256 header: set the webhook's secret in GitHub."
                   if not signature else
                   "X-Hub-Signature-256 does not match the project's webhook secret.")
        logger.warning("rejected delivery %s for %s: bad signature", delivery_id, full_name)
        return _error(401, message, "bad_signature")

    # No read-before-write for the common case: the unique delivery id (and the one
    # deployment per commit) are enforced by the database.  A collision rolls the whole
    # delivery back; the retry then sees what the other transaction committed.
    for _attempt in range(2):
        if _attempt and WebhookDelivery.objects.filter(delivery_id=delivery_id).exists():
            break
        try:
            with transaction.atomic():
                return _record(event, delivery_id, headers, payload, full_name, projects, len(body))
        except IntegrityError:
            continue
    return Answer(200, {"status": "duplicate", "delivery": delivery_id,
                        "message": "This delivery was already processed."})


def _record(event, delivery_id, headers, payload, full_name, projects, size) -> Answer:
    common = {
        "delivery_id": delivery_id,
        "event": event,
        "action": str(payload.get("action") or "")[:50],
        "hook_id": (headers.get("X-GitHub-Hook-ID") or "")[:50],
        "repository": full_name[:200],
        "body_bytes": size,
    }
    if event == "ping":
        WebhookDelivery.objects.create(project=projects[0], outcome=WebhookDelivery.Outcome.PING,
                                       reason="ping", **common)
        return Answer(200, {"status": "pong", "message": f"Switchback is listening for {full_name}.",
                            "projects": [p.slug for p in projects]})

    results = []
    first_delivery = True
    for project in projects:
        decision = github.decide(event=event, payload=payload,
                                 production_branch=project.production_branch)
        if not decision.deploy:
            results.append({"project": project.slug, "status": "ignored", "reason": decision.reason})
            outcome, deployment, reason = WebhookDelivery.Outcome.IGNORED, None, decision.reason
        else:
            deployment, created = deployment_from_webhook(
                project=project, sha=decision.sha,
                trigger=Trigger.MERGE if decision.trigger == "merge" else Trigger.PUSH,
                message=decision.message, author=decision.author, sender=decision.sender,
            )
            outcome = (WebhookDelivery.Outcome.DEPLOYED if created
                       else WebhookDelivery.Outcome.MERGED_INTO_EXISTING)
            reason = "" if created else f"Same commit as deployment #{deployment.number}."
            results.append({
                "project": project.slug,
                "status": "accepted" if created else "already_queued",
                "deployment": deployment.number,
                "sha": decision.sha,
                "url": reverse("api:deployment-detail",
                               kwargs={"slug": project.slug, "number": deployment.number}),
                **({} if created else {"reason": reason}),
            })
        if first_delivery:
            # The delivery id is unique: one row, naming the first project it concerned.
            WebhookDelivery.objects.create(
                project=project, deployment=deployment, outcome=outcome, reason=reason,
                commit_sha=decision.sha, ref=decision.ref[:255], **common,
            )
            first_delivery = False

    deploying = [r for r in results if r["status"] in ("accepted", "already_queued")]
    if not deploying:
        reason = "; ".join(r["reason"] for r in results)
        return Answer(200, {"status": "ignored", "reason": reason, "delivery": delivery_id})
    if len(deploying) == 1 and len(projects) == 1:
        only = deploying[0]
        status = 202 if only["status"] == "accepted" else 200
        return Answer(status, {"delivery": delivery_id, **only})
    status = 202 if any(r["status"] == "accepted" for r in deploying) else 200
    return Answer(status, {"status": "accepted" if status == 202 else "already_queued",
                           "delivery": delivery_id, "projects": results})
