"""Small formatting helpers for the dashboard templates."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """12.3 -> "12s", 185 -> "3m 5s", 7300 -> "2h 1m"; empty for None."""
    if seconds is None or seconds == "":
        return ""
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds > 0 else "0s"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@register.filter
def percent(value) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.0f}%"


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)


@register.filter
def is_platform_staff(user) -> bool:
    """The one staff rule (deployments.permissions.user_is_staff), for templates."""
    from deployments.permissions import user_is_staff

    return user_is_staff(user)
