"""A project's routing beyond weights: sticky clients, and a header or cookie that reaches
the revision being rolled out whatever the weights.

The project's fields (`Project.ROUTING_FIELDS`) are set by its admins, so they are
attacker-controlled: their validators (`route_names`) refuse anything but a safe token,
and the runtimes run the same checks again before a router sees them.  The engine hands
`traffic_routing_for` to every weight change it makes.
"""

from __future__ import annotations

from .runtimes.base import TrafficRouting


def traffic_routing_for(*, project, preview: str = "") -> TrafficRouting:
    """The project's routing settings for a weight change; ``preview`` is the revision a
    matching header or cookie reaches ("" when nothing is being rolled out)."""
    return TrafficRouting(
        sticky=bool(project.sticky_canary),
        header=project.canary_header or "",
        header_value=project.canary_header_value or "always",
        cookie=project.canary_cookie or "",
        preview=str(preview or ""),
    )
