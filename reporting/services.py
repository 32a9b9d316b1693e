"""Writes: a project's GitHub connection, its webhook, its notification destinations.

Every value comes from a project admin and is checked here (the API and the dashboard
both call these); secrets are write-only and never reach an audit row.
"""

from __future__ import annotations

import re
import secrets

from django.db import transaction

from deployments.errors import NotFound, ValidationError
from deployments.models import Project
from deployments.services import audit_record

from . import outbox, url_guard
from .github_auth import github_client_for
from .github_client import GitHubError
from .links import webhook_url
from .models import GitHubConnection, NotificationDestination, Report
from .notifications import EVENTS

WEBHOOK_EVENTS = ["push", "pull_request"]
TOKEN_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
ENVIRONMENT_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")
MAX_DESTINATIONS = 20


def _positive_int(value, name: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{name}: give a positive integer.", code="invalid")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: give a positive integer.", code="invalid") from None
    if not 0 < number < 2**63:
        raise ValidationError(f"{name}: give a positive integer.", code="invalid")
    return number


def github_connection_update(*, project: Project, actor, **fields) -> GitHubConnection:
    """Create or change how the project reports to GitHub.  `token`: None keeps it, "" clears it."""
    unknown = set(fields) - {"enabled", "auth", "token", "installation_id", "environment", "commit_status",
                             "hook_id"}
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}.", code="invalid")
    changes: dict = {}
    if "enabled" in fields:
        changes["enabled"] = _bool(fields["enabled"], "enabled")
    if "commit_status" in fields:
        changes["commit_status"] = _bool(fields["commit_status"], "commit_status")
    if "auth" in fields:
        if fields["auth"] not in GitHubConnection.Auth.values:
            raise ValidationError(f"auth: one of {', '.join(GitHubConnection.Auth.values)}.", code="invalid")
        changes["auth"] = fields["auth"]
    if fields.get("token") is not None:
        token = str(fields["token"]).strip()
        if token and not TOKEN_RE.match(token):
            raise ValidationError("token: a GitHub token is letters, digits, '_', '.' and '-' only.", code="invalid")
        changes["token"] = token
    if "environment" in fields:
        environment = str(fields["environment"] or "").strip()
        if not ENVIRONMENT_RE.match(environment):
            raise ValidationError("environment: 1-255 printable characters, e.g. production.", code="invalid")
        changes["environment"] = environment
    for name in ("installation_id", "hook_id"):
        if name in fields:
            changes[name] = _positive_int(fields[name], name)
    with transaction.atomic():
        connection, _ = GitHubConnection.objects.select_for_update().get_or_create(project=project)
        for name, value in changes.items():
            setattr(connection, name, value)
        if {"auth", "token", "installation_id"} & set(changes):
            connection.problem, connection.problem_fix, connection.problem_at = "", "", None
        connection.save()
        audit_record(actor=actor, action="github.update", project=project,
                     summary="GitHub reporting settings changed: " + ", ".join(sorted(changes)) if changes
                     else "GitHub reporting settings saved",
                     data={"fields": sorted(changes)})
        transaction.on_commit(lambda: outbox.github_reports_resume(project=project))
    return connection


def _bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "on", "1", 1):
        return True
    if value in ("false", "off", "0", 0, "", None):
        return False
    raise ValidationError(f"{name}: true or false.", code="invalid")


def github_webhook_connect(*, project: Project, actor) -> dict:
    """Create the repository's webhook (URL, secret, events), or bring an existing one in
    line; remember its id for the missed-delivery check.  A person copies nothing."""
    connection = GitHubConnection.objects.select_related("project").filter(project=project).first()
    if connection is None:
        raise ValidationError("Set the project's GitHub credentials first.", code="no_credentials")
    secret = project.webhook_secret
    if not secret:
        secret = secrets.token_urlsafe(32)
        Project.objects.filter(pk=project.pk).update(webhook_secret=secret)
        project.webhook_secret = secret
    url = webhook_url(project=project)
    config = {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"}
    try:
        client = github_client_for(connection=connection)
        existing = next((h for h in client.hooks_list() if (h.get("config") or {}).get("url") == url), None)
        if existing is None:
            hook = client.hook_create(config=config, events=WEBHOOK_EVENTS)
            verb = "created"
        else:
            # GitHub never shows a hook's secret: set ours, so the two surely agree.
            events = sorted(set(existing.get("events") or []) | set(WEBHOOK_EVENTS))
            hook = client.hook_update(hook_id=int(existing["id"]), config=config, events=events)
            verb = "verified"
    except GitHubError as exc:
        fix = getattr(exc, "fix", "")
        raise ValidationError(f"{exc.message} {fix}".strip(), code="github_refused") from exc
    GitHubConnection.objects.filter(pk=connection.pk).update(hook_id=int(hook["id"]))
    audit_record(actor=actor, action="github.webhook", project=project,
                 summary=f"GitHub webhook {hook['id']} {verb} for {url}",
                 data={"hook_id": int(hook["id"]), "url": url, "verb": verb})
    return {"hook_id": int(hook["id"]), "url": url, "result": verb}


# --- notification destinations ------------------------------------------------------------------


def _events_validate(events) -> list[str]:
    if not isinstance(events, list | tuple) or not all(isinstance(e, str) for e in events):
        raise ValidationError(f"events: a list among {', '.join(EVENTS)}.", code="invalid")
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise ValidationError(f"events: unknown {', '.join(unknown)} (choose among {', '.join(EVENTS)}).",
                              code="invalid")
    return [e for e in EVENTS if e in events]


def _destination_fields(fields: dict, *, creating: bool) -> dict:
    allowed = {"name", "kind", "url", "secret", "events", "enabled"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}.", code="invalid")
    clean: dict = {}
    if creating or "name" in fields:
        name = str(fields.get("name") or "").strip()
        if not 1 <= len(name) <= 100 or any(ord(c) < 32 for c in name):
            raise ValidationError("name: 1-100 printable characters.", code="invalid")
        clean["name"] = name
    if creating or "kind" in fields:
        if fields.get("kind") not in NotificationDestination.Kind.values:
            raise ValidationError(f"kind: one of {', '.join(NotificationDestination.Kind.values)}.", code="invalid")
        clean["kind"] = fields["kind"]
    if creating or fields.get("url") not in (None, ""):
        clean["url"] = url_guard.destination_url_validate(str(fields.get("url") or ""))
    if fields.get("secret") is not None:
        secret = str(fields["secret"])
        if len(secret) > 255 or any(ord(c) < 32 for c in secret):
            raise ValidationError("secret: at most 255 printable characters.", code="invalid")
        clean["secret"] = secret
    if creating or "events" in fields:
        clean["events"] = _events_validate(fields.get("events", []))
    if "enabled" in fields:
        clean["enabled"] = _bool(fields["enabled"], "enabled")
    return clean


def notification_destination_create(*, project: Project, actor, **fields) -> NotificationDestination:
    clean = _destination_fields(fields, creating=True)
    if clean["kind"] == NotificationDestination.Kind.WEBHOOK and not clean.get("secret"):
        clean["secret"] = secrets.token_urlsafe(32)  # never an unsigned JSON webhook
    if NotificationDestination.objects.filter(project=project).count() >= MAX_DESTINATIONS:
        raise ValidationError(f"A project has at most {MAX_DESTINATIONS} destinations.", code="too_many")
    with transaction.atomic():
        destination = NotificationDestination.objects.create(project=project, **clean)
        audit_record(actor=actor, action="notification.create", project=project,
                     summary=f"Notification destination {destination.name} ({destination.kind}) added",
                     data={"destination": destination.pk, "events": clean["events"]})
    return destination


def notification_destination_get(*, project: Project, destination_id) -> NotificationDestination:
    destination = NotificationDestination.objects.filter(project=project, pk=_positive_int(
        destination_id, "destination")).first()
    if destination is None:
        raise NotFound(f"No notification destination {destination_id} in {project.slug}.", code="not_found")
    return destination


def notification_destination_update(*, destination: NotificationDestination, actor,
                                    **fields) -> NotificationDestination:
    clean = _destination_fields(fields, creating=False)
    with transaction.atomic():
        for name, value in clean.items():
            setattr(destination, name, value)
        destination.save()
        audit_record(actor=actor, action="notification.update", project=destination.project,
                     summary=f"Notification destination {destination.name} changed: {', '.join(sorted(clean))}",
                     data={"destination": destination.pk, "fields": sorted(clean)})
    return destination


def notification_destination_delete(*, destination: NotificationDestination, actor) -> None:
    with transaction.atomic():
        audit_record(actor=actor, action="notification.delete", project=destination.project,
                     summary=f"Notification destination {destination.name} removed",
                     data={"destination": destination.pk})
        destination.delete()


def notification_destination_test(*, destination: NotificationDestination, actor) -> Report:
    with transaction.atomic():
        return outbox.notification_test(destination=destination)
