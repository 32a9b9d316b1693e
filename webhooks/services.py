"""GitHub intake: one delivery in, at most one queued deployment out.

The delivery row and the deployment are written in one transaction; the task is
enqueued on commit (and by the outbox sweep if the broker was down), so the webhook
answers in milliseconds and no merge is lost.
"""

from __future__ import annotations

import logging
import re
import secrets
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


# GitHub's ids are short: a delivery GUID, a numeric hook id, an event name.  The columns
# they go to are that wide, and PostgreSQL refuses NUL and friends in text.
_HEADER_LIMITS = {"X-GitHub-Event": 50, "X-GitHub-Delivery": 100, "X-GitHub-Hook-ID": 50}
_PRINTABLE = re.compile(r"[\x21-\x7e]*")
# The per-project hook id (Project.webhook_id): token_urlsafe, see deployments.models.
_HOOK_ID_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")
# Compared against when no project could match, so an unknown repository costs the same
# HMAC as a known one with a wrong signature.
_NO_SECRET = secrets.token_hex(32)


def _header(headers, name: str, *, required: bool) -> str:
    value = (headers.get(name) or "").strip()
    if not value and required:
        raise github.DeliveryError(f"Missing {name} header: this endpoint takes GitHub webhook deliveries.")
    if len(value) > _HEADER_LIMITS[name] or not _PRINTABLE.fullmatch(value):
        raise github.DeliveryError(
            f"{name} must be at most {_HEADER_LIMITS[name]} printable ASCII characters.")
    return value


def _unauthenticated(signature: str | None) -> Answer:
    """The one answer to every delivery no project vouches for.

    It is the same whether the repository (or hook id) is unknown, has no secret, or has a
    different one: an anonymous caller cannot learn which repositories are connected.
    """
    if not signature:
        return _error(401, "Missing X-Hub-Signature-256 header: set the webhook's secret in GitHub.",
                      "bad_signature")
    return _error(401, "X-Hub-Signature-256 does not match: check the webhook's payload URL and secret "
                  "against the project's Settings page in Switchback.", "bad_signature")


def delivery_receive(*, headers, body: bytes, content_type: str, hook_id: str | None = None) -> Answer:
    """Handle one POST to /webhooks/github/<hook_id>/ (or the shared /webhooks/github/).

    `headers` is case-insensitive (HttpHeaders).  With `hook_id`, the delivery is for that
    one project and must carry its signature; without, every project connected to the
    payload's repository whose secret signs it gets the delivery.
    """
    try:
        event = _header(headers, "X-GitHub-Event", required=True)
        delivery_id = _header(headers, "X-GitHub-Delivery", required=True)
        hook_header = _header(headers, "X-GitHub-Hook-ID", required=False)
    except github.DeliveryError as exc:
        return _error(exc.status, exc.message, "bad_header")
    try:
        payload = github.parse_payload(body=body, content_type=content_type)
        full_name = github.repository_full_name(payload)
        action = github.text_field(payload, "action")[:50]
    except github.DeliveryError as exc:
        return _error(exc.status, exc.message, "bad_payload")
    signature = headers.get("X-Hub-Signature-256")
    if hook_id is not None:
        found = _project_for_hook(hook_id=hook_id, body=body, signature=signature)
        if found is None:
            logger.warning("rejected delivery %s on a per-project hook: bad signature", delivery_id)
            return _unauthenticated(signature)
        projects = [found]
        if full_name and full_name.lower() != found.repository.lower() and event != "ping":
            return _ignore_other_repository(project=found, full_name=full_name, delivery_id=delivery_id,
                                            event=event, action=action, hook_header=hook_header, size=len(body))
        full_name = full_name or found.repository
    else:
        if not full_name:
            if event == "ping":  # an organisation hook's ping names no repository
                return Answer(200, {"status": "pong", "message": "Ping received; no repository named."})
            return _error(400, "The payload names no repository (repository.full_name).", "no_repository")
        projects = _projects_for_repository(full_name=full_name, body=body, signature=signature)
        if not projects:
            logger.warning("rejected delivery %s for %s: bad signature", delivery_id, full_name)
            return _unauthenticated(signature)

    # No read-before-write for the common case: the unique delivery id (and the one
    # deployment per commit) are enforced by the database.  A collision rolls the whole
    # delivery back; the retry then sees what the other transaction committed.
    try:
        for _attempt in range(2):
            if _attempt and WebhookDelivery.objects.filter(delivery_id=delivery_id).exists():
                break
            try:
                with transaction.atomic():
                    return _record(event, delivery_id, action, hook_header, payload, full_name, projects,
                                   len(body))
            except IntegrityError:
                continue
    except github.DeliveryError as exc:  # a field we keep is unusable: the transaction wrote nothing
        return _error(exc.status, exc.message, "bad_payload")
    return Answer(200, {"status": "duplicate", "delivery": delivery_id,
                        "message": "This delivery was already processed."})


def _project_for_hook(*, hook_id: str, body: bytes, signature: str | None) -> Project | None:
    """The project whose own URL this is, if the delivery carries its signature."""
    project = (Project.objects.filter(webhook_id=hook_id, archived_at__isnull=True).first()
               if _HOOK_ID_RE.fullmatch(hook_id) else None)
    secret = project.webhook_secret if project is not None else ""
    matches = github.signature_matches(secret=secret or _NO_SECRET, body=body, header=signature)
    return project if matches and secret else None


def _projects_for_repository(*, full_name: str, body: bytes, signature: str | None) -> list[Project]:
    """Every project connected to the repository whose secret signs the delivery."""
    candidates = list(Project.objects.filter(repository__iexact=full_name, archived_at__isnull=True).order_by("id"))
    if not candidates:
        github.signature_matches(secret=_NO_SECRET, body=body, header=signature)
    return [p for p in candidates
            if p.webhook_secret and github.signature_matches(secret=p.webhook_secret, body=body, header=signature)]


def _ignore_other_repository(*, project: Project, full_name: str, delivery_id: str, event: str, action: str,
                             hook_header: str, size: int) -> Answer:
    """Signed by this project, yet about another repository: a hook copied to the wrong
    place.  Kept in the delivery log; nothing deploys."""
    reason = (f"The delivery is about {full_name}, but this hook belongs to the project "
              f"{project.slug} ({project.repository}).")
    WebhookDelivery.objects.get_or_create(delivery_id=delivery_id, defaults={
        "event": event, "action": action, "hook_id": hook_header, "repository": full_name[:200],
        "project": project, "body_bytes": size, "outcome": WebhookDelivery.Outcome.IGNORED, "reason": reason})
    return Answer(200, {"status": "ignored", "reason": reason, "delivery": delivery_id})


def _record(event, delivery_id, action, hook_header, payload, full_name, projects, size) -> Answer:
    common = {
        "delivery_id": delivery_id,
        "event": event,
        "action": action,
        "hook_id": hook_header,
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
