"""Single-host runtime: Podman/Docker through the Engine API, HAProxy's Runtime API."""

from .runtime import SingleHostRuntime

__all__ = ["SingleHostRuntime"]
