"""The URLs Switchback reports: a deployment's page, the live app, the webhook endpoint."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse


def public_url(path: str) -> str:
    return settings.SWITCHBACK["PUBLIC_URL"].rstrip("/") + path


def deployment_page_url(*, slug: str, number: int) -> str:
    return public_url(reverse("dashboard:deployment", kwargs={"slug": slug, "number": number}))


def project_page_url(*, slug: str) -> str:
    return public_url(reverse("dashboard:project", kwargs={"slug": slug}))


def environment_url(*, slug: str) -> str:
    template = settings.SWITCHBACK["GITHUB"]["ENVIRONMENT_URL"]
    return template.format(project=slug, base_domain=settings.SWITCHBACK.get("BASE_DOMAIN", "localhost"))


def webhook_url(*, project) -> str:
    """The payload URL GitHub delivers this project's events to: the project's own URL
    (an unguessable id per project, see webhooks/urls.py)."""
    from deployments.selectors import webhook_url_get

    return webhook_url_get(project=project)
