"""Which GitHub requests a rollout event becomes (rows for the outbox, not requests yet).

    created            -> a GitHub deployment for the commit, status queued (+ commit status pending)
    started            -> in_progress
    went live          -> success (+ inactive for the deployment it replaced, commit status success)
    failed             -> failure, or error when Switchback itself gave up (internal error, retries spent)
    superseded         -> inactive (it never ran: a newer deployment or a rollback came first)

A rollback is its own GitHub deployment of the rolled-back-to commit; its descriptions say
it is a rollback, from which number, and for a gate's rollback, why.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployments.models import Deployment, State, Trigger
from deployments.progress import Progress

from . import links
from .models import GitHubConnection, Report

GATE_ACTOR = "switchback"  # requested_by_name of the automatic (gate) rollbacks


@dataclass(frozen=True)
class Rollback:
    target: int  # the number rolled back to
    previous: int | None  # the number that was live
    automatic: bool
    reason: str  # why a gate rolled back ("" for a person)
    by: str


def rollback_of(deployment: Deployment, *, previous: int | None = None) -> Rollback | None:
    """What a rollback deployment undid; None for any other deployment."""
    if deployment.trigger != Trigger.ROLLBACK:
        return None
    if previous is None:
        previous = Progress.of(deployment).previous_live
    if previous is None and deployment.project.live_deployment_id:
        previous = deployment.project.live_deployment.number
    automatic = deployment.requested_by_name == GATE_ACTOR and deployment.requested_by_id is None
    reason = ""
    if automatic and previous is not None:
        failed = deployment.project.deployments.filter(number=previous).values_list("failure_reason", flat=True).first()
        reason = (failed or "").removeprefix("Failed after going live: ")
    target = deployment.rollback_of.number if deployment.rollback_of_id else int(deployment.revision)
    return Rollback(target=target, previous=previous, automatic=automatic, reason=reason,
                    by=deployment.requested_by_name)


def rollback_sentence(rollback: Rollback, *, number: int) -> str:
    frm = f" from #{rollback.previous}" if rollback.previous is not None else ""
    if rollback.automatic:
        why = rollback.reason or "failed after going live"
        return f"Automatic rollback{frm} to #{rollback.target} (#{number}): {why}"
    return f"Rollback{frm} to #{rollback.target} (#{number})" + (f" by {rollback.by}" if rollback.by else "")


def _failure_state(deployment: Deployment) -> str:
    reason = deployment.failure_reason
    if reason.startswith("Internal error") or "giving up" in reason:
        return "error"
    return "failure"


def _status(deployment: Deployment, state: str, description: str, *, environment: str) -> dict:
    return {"state": state, "description": description,
            "log_url": links.deployment_page_url(slug=deployment.project.slug, number=deployment.number),
            "environment_url": links.environment_url(slug=deployment.project.slug) if state == "success" else "",
            "environment": environment}


def github_rows(*, event: str, deployment: Deployment, connection: GitHubConnection) -> list[Report]:
    """The outbox rows an event becomes for GitHub (unsaved), in the order they must go."""
    env = connection.environment
    n = deployment.number
    rows: list[tuple[str, Deployment, dict]] = []
    commit_state = description = None
    if event == "created":
        rollback = rollback_of(deployment)
        description = rollback_sentence(rollback, number=n) if rollback else (
            f"#{n}: {(deployment.message.splitlines() or [''])[0]}".rstrip(": "))
        payload = {"switchback_deployment": n, "project": deployment.project.slug, "trigger": deployment.trigger}
        if rollback:
            payload.update({"rollback_to": rollback.target, "rollback_from": rollback.previous,
                            "automatic": rollback.automatic})
        rows.append((Report.Kind.GITHUB_DEPLOYMENT, deployment,
                     {"ref": deployment.commit_sha, "environment": env, "description": description,
                      "payload": payload}))
        rows.append((Report.Kind.GITHUB_STATUS, deployment, _status(deployment, "queued", f"Queued as #{n}",
                                                                    environment=env)))
        commit_state, description = "pending", f"Queued as #{n}"
    elif event == "started":
        rollback = rollback_of(deployment)
        text = f"Rolling back to #{rollback.target} (#{n})" if rollback else f"Deploying #{n}"
        rows.append((Report.Kind.GITHUB_STATUS, deployment, _status(deployment, "in_progress", text, environment=env)))
    elif event == "went-live":
        progress = Progress.of(deployment)
        rollback = rollback_of(deployment, previous=progress.previous_live)
        description = rollback_sentence(rollback, number=n) if rollback else f"#{n} is live"
        rows.append((Report.Kind.GITHUB_STATUS, deployment, _status(deployment, "success", description,
                                                                    environment=env)))
        replaced = (deployment.project.deployments.filter(number=progress.previous_live).first()
                    if progress.previous_live is not None else None)
        if replaced is not None and replaced.pk != deployment.pk:
            rows.append((Report.Kind.GITHUB_STATUS, replaced,
                         _status(replaced, "inactive", f"Replaced by #{n}", environment=env)))
        commit_state = "success"
    elif event == "failed":
        went_live = deployment.live_at is not None
        state = "failure" if went_live else _failure_state(deployment)
        description = deployment.failure_reason or "Failed"
        rows.append((Report.Kind.GITHUB_STATUS, deployment, _status(deployment, state, description, environment=env)))
        commit_state = "failure" if state == "failure" else "error"
    elif event == "superseded":
        description = deployment.failure_reason or State(deployment.state).label
        rows.append((Report.Kind.GITHUB_STATUS, deployment, _status(deployment, "inactive", description,
                                                                    environment=env)))
        commit_state, description = "error", f"Not deployed: {description}"
    if connection.commit_status and commit_state:
        rows.append((Report.Kind.GITHUB_COMMIT_STATUS, deployment,
                     {"sha": deployment.commit_sha, "state": commit_state, "description": description or "",
                      "target_url": links.deployment_page_url(slug=deployment.project.slug, number=n)}))
    return [Report(project_id=deployment.project_id, deployment=target, kind=kind, event=event, payload=payload)
            for kind, target, payload in rows]
