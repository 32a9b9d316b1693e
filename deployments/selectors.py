"""Reads: querysets shaped for the API and the pages, with a constant number of queries."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from .errors import NotFound
from .gates.rules import GateRules
from .models import ACTIVE_STATES, AuditEntry, Deployment, DeploymentEvent, Membership, Project, State
from .permissions import user_is_staff
from .progress import Progress, RolloutConfig
from .strategies import Strategy


def project_list() -> QuerySet[Project]:
    return Project.objects.select_related("live_deployment", "live_deployment__source").order_by("name")


def project_list_visible(*, user) -> QuerySet[Project]:
    """The projects a user may see: all for staff, those they are a member of otherwise."""
    projects = project_list()
    if user is None or not getattr(user, "is_authenticated", False):
        return projects.none()
    if user_is_staff(user):
        return projects  # archived ones too: staff keep reading their history
    return projects.filter(memberships__user=user, archived_at__isnull=True)


def project_get(*, slug: str) -> Project:
    project = project_list().filter(slug=slug).first()
    if project is None:
        raise NotFound(f"No project with slug '{slug}'.", code="not_found")  # as for a stranger
    return project


def webhook_url_get(*, project: Project, request=None) -> str:
    """The project's own webhook payload URL, to paste into GitHub (admins only see it).

    SWITCHBACK_PUBLIC_URL when set; otherwise the scheme, host and port the request came
    to (Django checks the host against ALLOWED_HOSTS), so `up --port 9000` shows :9000.
    """
    from django.conf import settings
    from django.urls import reverse

    path = reverse("webhooks:github-project", kwargs={"hook_id": project.webhook_id})
    if request is not None and not settings.SWITCHBACK.get("PUBLIC_URL_SET", True):
        return request.build_absolute_uri(path)
    return settings.SWITCHBACK["PUBLIC_URL"].rstrip("/") + path


# What a history row never shows: the config snapshot and the engine's bookkeeping, of the
# row and of the deployments it points at (they can be kilobytes each).
_HEAVY = ("config", "progress", "step_token")
_LIST_DEFER = (*_HEAVY, *(f"{rel}__{name}" for rel in ("rollback_of", "source")
                          for name in (*_HEAVY, "message", "failure_reason", "image", "image_digest")))


def deployment_list(*, project: Project) -> QuerySet[Deployment]:
    """The history, newest first: one query per page, whatever the page size."""
    return (
        Deployment.objects.filter(project=project)
        .select_related("project", "rollback_of", "source")
        .defer(*_LIST_DEFER)
        .order_by("-number")
    )


def deployment_get(*, project: Project, number: int) -> Deployment:
    deployment = (Deployment.objects.filter(project=project, number=number)
                  .select_related("project", "requested_by", "rollback_of", "source").first())
    if deployment is None:
        raise NotFound(f"Deployment #{number} does not exist in {project.slug}.")
    return deployment


def deployment_in_flight(*, project: Project) -> Deployment | None:
    return (Deployment.objects.filter(project=project, state__in=ACTIVE_STATES)
            .select_related("project", "source").order_by("-number").first())


def history_fingerprint(*, project: Project, opened: Deployment | None) -> str:
    """Changes whenever the History page would show a new row, a new live revision or a
    rollout changing phase: the project's counter and live deployment (``project`` as
    loaded in this request) and the open deployment (``deployment_open``).  Cheap enough
    to poll twice a second: one or two indexed reads."""
    number, state = (opened.number, opened.state) if opened is not None else (0, "")
    return f"{project.deployment_counter}.{project.live_deployment_id or 0}.{number}.{state}"


def deployment_open(*, project: Project) -> Deployment | None:
    """The deployment being rolled out now, else the oldest one still queued."""
    active = deployment_in_flight(project=project)
    if active is not None:
        return active
    return (Deployment.objects.filter(project=project, state=State.QUEUED)
            .select_related("project", "source").order_by("number").first())


def projects_overview(*, user, recent: int = 5) -> list[Project]:
    """Visible projects with `.in_flight` and `.recent` attached: three queries in all."""
    projects = list(project_list_visible(user=user))
    ids = [p.pk for p in projects]
    in_flight: dict[int, Deployment] = {}
    for d in (Deployment.objects.filter(project_id__in=ids, state__in=ACTIVE_STATES)
              .order_by("project_id", "-number")):
        in_flight.setdefault(d.project_id, d)
    ranked = (Deployment.objects.filter(project_id__in=ids)
              .annotate(rank=Window(RowNumber(), partition_by=[F("project_id")], order_by=F("number").desc()))
              .filter(rank__lte=recent).order_by("project_id", "-number"))
    last: dict[int, list[Deployment]] = defaultdict(list)
    for d in ranked:
        last[d.project_id].append(d)
    for p in projects:
        p.in_flight = in_flight.get(p.pk)
        p.recent = last.get(p.pk, [])
        latest = p.recent[0] if p.recent else None
        if p.in_flight is not None:
            p.status = "rolling-out"
        elif latest is not None and latest.state == State.FAILED:
            p.status = "failed"
        elif latest is not None and latest.state == State.QUEUED:
            p.status = "queued"
        else:
            p.status = "idle"
    return projects


# --- a rollout, phase by phase ----------------------------------------------------------------

PHASES = [
    ("build", "Build", State.BUILDING),
    ("start", "Start", State.STARTING),
    ("probes", "Probes", State.VERIFYING),
    ("switch", "Switch", State.SWITCHING),
]
_PHASE_OF_STATE = {State.BUILDING: "build", State.STARTING: "start", State.VERIFYING: "probes",
                   State.SWITCHING: "switch"}
_END_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED, State.SUPERSEDED)
# Older timelines (before phase events carried their state) are read by their message.
_PHASE_OF_MESSAGE = {"Building.": "build", "Starting.": "start", "Verifying.": "probes", "Switching.": "switch"}


def _phase_state(event: DeploymentEvent) -> str:
    phase = (event.data or {}).get("phase")
    if phase:
        return phase
    for state, key in _PHASE_OF_STATE.items():
        if _PHASE_OF_MESSAGE.get(event.message) == key:
            return state
    if event.message.startswith(("Succeeded", "Failed", "Cancelled", "Superseded")):
        return event.message.split(":")[0].rstrip(".").lower()
    return ""
_ORDER = [State.QUEUED, State.BUILDING, State.STARTING, State.VERIFYING, State.SWITCHING, State.SUCCEEDED]


def deployment_phases(*, deployment: Deployment, phase_events: list[DeploymentEvent]) -> list[dict]:
    """Build, start, probes, switch: each with its state, start time and duration.

    Times come from the phase events the engine writes as it moves the state forward.
    """
    starts: dict[str, object] = {}
    end_time = None
    for event in phase_events:
        state = _phase_state(event)
        key = _PHASE_OF_STATE.get(state)
        if key:
            starts.setdefault(key, event.created_at)
        elif state in _END_STATES:
            end_time = event.created_at
    if end_time is None and deployment.finished_at:
        end_time = deployment.finished_at
    current = deployment.state
    current_index = _ORDER.index(current) if current in _ORDER else None
    phases = []
    keys = [key for key, _, _ in PHASES]
    for i, (key, label, state) in enumerate(PHASES):
        began, note = starts.get(key), ""
        following = [starts[k] for k in keys[i + 1:] if k in starts]
        ended = following[0] if following else (end_time if began else None)
        if current == state:
            status = "current"
            ended = None
        elif began is None:
            note = ""
            if key == "build" and deployment.image and starts:
                status, note = "skipped", "reused image"  # a rollback or redeploy reusing a built image
            elif key in ("start", "probes") and "switch" in starts:
                status, note = "skipped", "skipped: warm"  # a warm rollback: its revision already ran
            elif deployment.is_final:
                status = "not-reached"
            else:
                status = "pending"
        elif current_index is not None and current_index > _ORDER.index(state):
            status = "done"
        elif current == State.FAILED:
            status = "failed" if not following else "done"
        else:
            status = "done" if ended else "stopped"
        duration = (ended - began).total_seconds() if began and ended else None
        phases.append({"key": key, "label": label, "status": status, "started": began, "duration": duration,
                       "note": note if status == "skipped" else ""})
    return phases


def rollout_snapshot(*, deployment: Deployment, log_lines: int = 40) -> dict:
    """What the live panel shows: phases, traffic split, probes, latest log lines (4 queries)."""
    phase_events = list(deployment.events.filter(kind=DeploymentEvent.Kind.PHASE).order_by("id"))
    probes = list(deployment.events.filter(kind=DeploymentEvent.Kind.PROBE).order_by("-id")[:5])
    logs = list(deployment.events.filter(kind__in=[DeploymentEvent.Kind.LOG, DeploymentEvent.Kind.ERROR,
                                                   DeploymentEvent.Kind.TRAFFIC, DeploymentEvent.Kind.GATE,
                                                   DeploymentEvent.Kind.INFO])
                .order_by("-id")[:log_lines])
    logs.reverse()
    progress = Progress.of(deployment)
    strategy = Strategy.of(RolloutConfig.of(deployment))
    switching = deployment.state == State.SWITCHING
    weights = progress.weights
    revision = deployment.revision
    new_weight = int(weights.get(revision, 100 if deployment.state == State.SUCCEEDED else 0))
    waiting = strategy.waiting_step(switching=switching, progress=progress)
    return {
        "deployment": deployment,
        "phases": deployment_phases(deployment=deployment, phase_events=phase_events),
        "weights": sorted(weights.items(), key=lambda kv: kv[0] != revision),
        "new_weight": new_weight,
        "old_weight": 100 - new_weight,
        "steps": strategy.steps,
        "step": progress.step,
        "waiting_step": waiting,
        "holding": strategy.holding(switching=switching, progress=progress),
        "step_until": progress.step_until,
        "probes": probes,
        "logs": logs,
        "waiting": deployment_waiting_get(deployment=deployment),
        "schedule": deployment_schedule_get(deployment=deployment),

        # The metric gates in words, and their latest verdict (from the lines above: no query).
        "gate_rules": GateRules.of(deployment).describe(),
        "gate_last": next((e.message for e in reversed(logs) if e.kind == DeploymentEvent.Kind.GATE
                           and e.message.startswith("Gate ")), ""),
    }


def deployment_timeline(*, deployment: Deployment) -> dict:
    events = list(deployment.events.order_by("id"))
    phase_events = [e for e in events if e.kind == DeploymentEvent.Kind.PHASE]
    previous = None
    for event in events:
        event.since_previous = (event.created_at - previous).total_seconds() if previous else None
        previous = event.created_at
    return {"events": events, "phases": deployment_phases(deployment=deployment, phase_events=phase_events)}


# --- people and what they did -------------------------------------------------------------------


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


def audit_list(*, project: Project | None = None) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.select_related("project")
    if project is not None:
        entries = entries.filter(project=project)
    return entries.order_by("-created_at", "-id")


def token_get(*, user):
    """The user's API token record (when it was made), never its value: only its digest is kept."""
    from knox.models import AuthToken

    return AuthToken.objects.filter(user=user).order_by("-created").first()


# --- schedules and what a rollout waits for --------------------------------------------------


def deployment_schedule_get(*, deployment: Deployment) -> dict | None:
    from .models import DeploymentSchedule
    from .schedules import schedule_describe

    return schedule_describe(DeploymentSchedule.objects.filter(deployment_id=deployment.pk).first())


def deployment_waiting_get(*, deployment: Deployment):
    """Why the rollout waits and until when (waits.Waiting), or None."""
    from django.utils import timezone

    from .waits import deployment_waiting_for

    return deployment_waiting_for(deployment=deployment, now=timezone.now())
