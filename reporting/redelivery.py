"""Missed deliveries: GitHub never redelivers a failed webhook by itself.

Periodically list the hook's recent deliveries and ask GitHub to redeliver each failed one
Switchback has no record of (no WebhookDelivery with its X-GitHub-Delivery guid), within
GitHub's 3-day redelivery window.  https://docs.github.com/en/rest/repos/webhooks#list-
deliveries-for-a-repository-webhook and .../redeliver-a-delivery-for-a-repository-webhook
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from deployments.services import audit_record
from webhooks.models import WebhookDelivery

from .github_auth import github_client_for
from .github_client import GitHubClient, GitHubError, Permanent
from .links import webhook_url
from .models import GitHubConnection, RedeliveryRequest

logger = logging.getLogger(__name__)

REDELIVERY_WINDOW = timedelta(days=3)
MAX_PAGES = 10
MAX_ASKS_PER_DELIVERY = 5  # a redelivery that fails again is asked again, this often at most


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def hook_find(*, client: GitHubClient, project) -> int | None:
    url = webhook_url(project=project)
    for hook in client.hooks_list():
        if (hook.get("config") or {}).get("url") == url:
            return int(hook["id"])
    return None


def redeliveries_settle(*, project) -> int:
    """Say in the activity feed which asked-for deliveries have arrived since, and what they did."""
    asked = {r.guid: r for r in RedeliveryRequest.objects.filter(project=project, outcome="asked")}
    if not asked:
        return 0
    arrived = WebhookDelivery.objects.filter(delivery_id__in=list(asked)).select_related("deployment")
    count = 0
    for delivery in arrived:
        RedeliveryRequest.objects.filter(guid=delivery.delivery_id, outcome="asked").update(outcome="recovered")
        deployed = f" (deployment #{delivery.deployment.number})" if delivery.deployment_id else ""
        audit_record(actor=None, actor_name="switchback", action="webhook.recovered", project=project,
                     summary=f"Recovered the missed {delivery.event} delivery {delivery.delivery_id}: "
                     f"{delivery.get_outcome_display().lower()}{deployed}",
                     data={"guid": delivery.delivery_id, "outcome": delivery.outcome,
                           "deployment": delivery.deployment.number if delivery.deployment_id else None})
        count += 1
    return count


def deliveries_recover(*, connection: GitHubConnection, now: datetime | None = None) -> list[RedeliveryRequest]:
    """Ask for the redelivery of the project's failed, unrecorded deliveries; returns the asks."""
    now = now or timezone.now()
    project = connection.project
    redeliveries_settle(project=project)
    client = github_client_for(connection=connection)
    hook_id = connection.hook_id
    if hook_id is None:
        hook_id = hook_find(client=client, project=project)
        if hook_id is None:
            return []
        GitHubConnection.objects.filter(pk=connection.pk).update(hook_id=hook_id)
    oldest = now - REDELIVERY_WINDOW
    latest: dict[str, dict] = {}  # guid -> its newest attempt
    cursor = ""
    for _ in range(MAX_PAGES):
        page, cursor = client.hook_deliveries(hook_id=hook_id, cursor=cursor)
        for attempt in page:
            delivered = _when(attempt.get("delivered_at"))
            if delivered is None or delivered < oldest:
                continue
            guid = attempt.get("guid") or ""
            known = latest.get(guid)
            if known is None or int(attempt["id"]) > int(known["id"]):
                latest[guid] = attempt
        if not cursor or not page or all((_when(a.get("delivered_at")) or now) < oldest for a in page):
            break
    failed = {guid: a for guid, a in latest.items()
              if guid and not 200 <= int(a.get("status_code") or 0) < 300}
    if not failed:
        GitHubConnection.objects.filter(pk=connection.pk).update(deliveries_checked_at=now)
        return []
    recorded = set(WebhookDelivery.objects.filter(delivery_id__in=list(failed)).values_list("delivery_id", flat=True))
    asked_ids = set(RedeliveryRequest.objects.filter(guid__in=list(failed)).values_list("github_delivery_id",
                                                                                         flat=True))
    asks: list[RedeliveryRequest] = []
    for guid, attempt in sorted(failed.items(), key=lambda item: int(item[1]["id"])):
        if guid in recorded or int(attempt["id"]) in asked_ids:
            continue
        if RedeliveryRequest.objects.filter(guid=guid).count() >= MAX_ASKS_PER_DELIVERY:
            continue
        try:
            client.delivery_redeliver(hook_id=hook_id, delivery_id=int(attempt["id"]))
            outcome = "asked"
        except Permanent as exc:
            outcome = f"refused: {exc.message}"[:200]
        ask = RedeliveryRequest.objects.create(
            project=project, guid=guid, github_delivery_id=int(attempt["id"]), event=attempt.get("event") or "",
            status_code=attempt.get("status_code"), delivered_at=_when(attempt.get("delivered_at")), outcome=outcome)
        asks.append(ask)
        audit_record(actor=None, actor_name="switchback", action="webhook.redeliver", project=project,
                     summary=f"Asked GitHub to redeliver {attempt.get('event') or 'a'} delivery {guid} "
                     f"(it failed with {attempt.get('status_code') or 'no answer'} at {attempt.get('delivered_at')}"
                     f" and Switchback has no record of it)" + ("" if outcome == "asked" else f": {outcome}"),
                     data={"guid": guid, "github_delivery_id": int(attempt["id"]), "event": attempt.get("event"),
                           "status_code": attempt.get("status_code"), "outcome": outcome})
    GitHubConnection.objects.filter(pk=connection.pk).update(deliveries_checked_at=now)
    return asks


def deliveries_recover_all() -> int:
    count = 0
    for connection in GitHubConnection.objects.filter(enabled=True).select_related("project"):
        try:
            count += len(deliveries_recover(connection=connection))
        except GitHubError as exc:
            logger.warning("missed deliveries of %s not checked: %s", connection.project.slug, exc.message)
    return count
