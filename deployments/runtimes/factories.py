"""Build runtime instances (and their host services) from Django settings."""

from __future__ import annotations

from django.conf import settings


def single_host():
    from .single_host import SingleHostRuntime

    return SingleHostRuntime(**settings.SWITCHBACK.get("SINGLE_HOST", {}))


def kubernetes():
    from .kubernetes import KubernetesRuntime

    return KubernetesRuntime(**settings.SWITCHBACK.get("KUBERNETES", {}))


def single_host_services_start(*, supervisor, apps_port: int, env: dict) -> None:
    """Start what the single-host runtime needs beside the platform (filled in below)."""
    return None
