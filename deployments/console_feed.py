"""What `manage.py up` prints after start-up: one line per deployment milestone.

A person watching the terminal wants to see deployments start, go live, fail or be rolled
back; everything else (workers' banners, periodic tasks, access logs) goes to the log
files.  The feed reads the phase events the transitions write (deployments/transitions.py),
so it sees what the engine decided, from any worker, and never needs the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import DeploymentEvent, State, Trigger


@dataclass(frozen=True)
class FeedLine:
    event_id: int
    project: str
    number: int
    phase: str
    text: str


def _line(event: DeploymentEvent) -> str | None:
    deployment = event.deployment
    phase, previous = event.data.get("phase"), event.data.get("from")
    name = f"{deployment.project.slug} #{deployment.number}"
    sha = deployment.commit_sha[:7]
    rollback = deployment.trigger == Trigger.ROLLBACK and deployment.rollback_of is not None
    what = f"rollback to #{deployment.rollback_of.number} ({sha})" if rollback else sha
    if deployment.message and not rollback:
        what += f' "{deployment.message.splitlines()[0][:60]}"'
    if previous == State.QUEUED and phase not in (State.SUCCEEDED, State.FAILED, State.CANCELLED, State.SUPERSEDED):
        return f"{name} starting: {what}"
    if phase == State.SUCCEEDED:
        took = ""
        if deployment.live_at and deployment.created_at:
            took = f" in {(deployment.live_at - deployment.created_at).total_seconds():.1f} s"
        if rollback:
            return f"{name} live: rolled back to #{deployment.rollback_of.number} ({sha}){took}"
        return f"{name} live: {sha}{took}"
    if phase == State.FAILED:
        reason = (deployment.failure_reason or event.message).splitlines()[0][:200]
        return f"{name} failed: {reason}"
    if phase in (State.CANCELLED, State.SUPERSEDED):
        return f"{name} {State(phase).label.lower()}"
    return None


def console_feed_latest_id() -> int:
    """Where a new feed starts: events written before `up` started are history, not news."""
    latest = DeploymentEvent.objects.order_by("-id").values_list("id", flat=True).first()
    return latest or 0


def console_feed_after(*, after_id: int, limit: int = 200) -> list[FeedLine]:
    """Deployment milestones written after ``after_id``, oldest first."""
    events = (DeploymentEvent.objects.filter(id__gt=after_id, data__has_key="phase")
              .select_related("deployment__project", "deployment__rollback_of")
              .order_by("id")[:limit])
    lines = []
    for event in events:
        text = _line(event)
        lines.append(FeedLine(event_id=event.id, project=event.deployment.project.slug,
                              number=event.deployment.number, phase=event.data.get("phase", ""),
                              text=text or ""))
    return lines
