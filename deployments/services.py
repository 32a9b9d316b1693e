"""Writes: every change to projects and deployments goes through these functions.

Named `<entity>_<verb>` with keyword-only arguments (HackSoftware's styleguide).
Views, API views and tasks call one of them and render the result.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import dispatch, lifecycle
from .envvars import env_validate
from .errors import Conflict, NotFound, PermanentError, SwitchbackError, TransientError, ValidationError
from .gates.rules import gates_validate
from .image_policy import image_template_validate
from .models import (
    ACTIVE_STATES,
    FINAL_STATES,
    SHA_RE,
    AuditEntry,
    Deployment,
    DeploymentEvent,
    Project,
    State,
    Trigger,
)
from .permissions import project_fields_require
from .progress import Progress, RolloutConfig
from .schedules import schedule_bring_forward, schedule_create_for, schedule_input_check, schedule_set
from .strategies import Strategy, strategy_schedule_refuse_past, strategy_validate
from .timeline import event_record, event_save, progress_change, timeline_deferred
from .transitions import deployment_transition, deployments_supersede_queued
from .waits import deployment_waiting_for
from .windows import window_validate

logger = logging.getLogger(__name__)

WEBHOOK_TRIGGERS = (Trigger.MERGE, Trigger.PUSH)

PROJECT_WRITABLE_FIELDS = (
    "name",
    "slug",
    "repository",
    "production_branch",
    "clone_url",
    "webhook_secret",
    "git_token",
    *Project.RUNTIME_FIELDS,
    "deploy_window",
    *Project.ROUTING_FIELDS,
)


def _actor_name(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "username", "") or str(actor)


def audit_record(*, actor, action: str, project: Project | None = None, summary: str = "",
                 data: dict | None = None, actor_name: str = "") -> AuditEntry:
    actor_obj = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEntry.objects.create(
        actor=actor_obj,
        actor_name=actor_name or _actor_name(actor),
        project=project,
        action=action,
        summary=summary,
        data=data or {},
    )


# --- projects ------------------------------------------------------------------------------


def _full_clean(project: Project) -> None:
    # The same domain validators as the API and the dashboard (they raise ValidationError).
    project.strategy = strategy_validate(project.strategy)
    project.deploy_window = window_validate(project.deploy_window)
    project.gates = gates_validate(project.gates)
    project.env = env_validate(project.env)
    try:
        project.full_clean(exclude=["live_deployment"])
    except DjangoValidationError as exc:
        details = exc.message_dict
        first_field, messages = next(iter(details.items()))
        raise ValidationError(f"{first_field}: {' '.join(messages)}", code="invalid") from exc


def project_create(*, actor, **fields) -> Project:
    unknown = set(fields) - set(PROJECT_WRITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown project fields: {', '.join(sorted(unknown))}.")
    project = Project(**fields)
    if not project.name:
        project.name = project.slug
    _full_clean(project)
    strategy_schedule_refuse_past(project.strategy, now=timezone.now())
    image_template_validate(template=project.image_template, project_slug=project.slug)
    with transaction.atomic():
        if Project.objects.filter(slug=project.slug).exists():
            raise Conflict(f"A project with slug '{project.slug}' already exists.", code="slug_taken")
        project.save()
        if getattr(actor, "is_authenticated", False):
            # Whoever creates a project administers it (and shows up in its members).
            from .models import Membership, Role

            Membership.objects.create(project=project, user=actor, role=Role.ADMIN)
        audit_record(
            actor=actor, action="project.create", project=project,
            summary=f"created project {project.slug} for {project.repository}",
        )
    return project


def _refuse_moving_a_live_project(*, project: Project, fields: dict) -> None:
    """Runtime and cluster say where the project's revisions run; once one has gone live
    (or a rollout is on its way) they stay there, or retirements, rollbacks and the
    reconciler would act on one place while traffic is served from the other."""
    moved = [name for name in ("runtime", "cluster") if name in fields and fields[name] != getattr(project, name)]
    if not moved:
        return
    rolling_out = project.deployments.exclude(state__in=FINAL_STATES).exists()
    if project.live_deployment_id is None and not rolling_out:
        return
    where = project.runtime + (f" (cluster {project.cluster})" if project.cluster else "")
    raise ValidationError(f"{moved[0]}: This project's revisions run on {where}"
                          f"{' and a rollout is in progress' if rolling_out else ''}; "
                          "where a live project runs cannot change. Create a new project "
                          "for the other place and point the host name at it.")


def project_archive(*, project: Project, actor, confirm: str | None = None) -> Project:
    """Archive ("delete") a project: cancel what is in flight, remove its revisions, route
    and images from its runtime, free its slug, keep its history and audit for staff.

    ``confirm`` (the dashboard asks for it) must be the project's slug.  Idempotent: when the
    runtime is unreachable the error says so and the project stays archived under its slug;
    archiving again finishes the job.
    """
    from .transitions import project_lock

    slug = project.archived_slug or project.slug
    if confirm is not None and confirm.strip() != slug:
        raise ValidationError(f"confirm: Type the project's slug, {slug}, to archive it.", code="invalid")
    with transaction.atomic():
        project = project_lock(project_id=project.pk)
        for open_deployment in project.deployments.exclude(state__in=FINAL_STATES).order_by("number"):
            deployment_transition(deployment=open_deployment, to=State.CANCELLED,
                                  reason="The project was archived.")
        if project.archived_at is None:
            project.archived_at = timezone.now()
            project.archived_by_name = _actor_name(actor)[:200]
        project.archived_slug = slug
        # Nothing is live any more: the reconciler, liveness and adoption leave it alone.
        project.live_deployment = None
        project.save(update_fields=["archived_at", "archived_by_name", "archived_slug", "live_deployment"])
    # Outside the lock: stopping containers takes seconds.  The runtime still knows it by its slug.
    removed = lifecycle.runtime_of(project).project_remove(project=slug)
    with transaction.atomic():
        project.slug = f"archived-{project.pk}"  # frees the slug; a valid, unique slug of its own
        project.save(update_fields=["slug"])
        audit_record(actor=actor, action="project.archive", project=project,
                     summary=f"archived project {slug}" + (f": removed {', '.join(removed)}" if removed else ""),
                     data={"slug": slug, "removed": removed})
    return project


def project_update(*, project: Project, actor, **fields) -> Project:
    unknown = set(fields) - set(PROJECT_WRITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown project fields: {', '.join(sorted(unknown))}.")
    if "slug" in fields and fields["slug"] != project.slug:
        raise ValidationError("slug: a project's slug cannot change (it names its host and revisions).")
    # Where a project runs and which image it runs are the operator's call (one staff rule).
    project_fields_require(user=actor, project=project, fields=fields)
    if fields.get("image_template", project.image_template) != project.image_template:
        image_template_validate(template=fields["image_template"], project_slug=project.slug)
    _refuse_moving_a_live_project(project=project, fields=fields)
    changes: dict[str, dict] = {}
    for name, value in fields.items():
        old = getattr(project, name)
        if old != value:
            # Secrets are recorded as changed, never with their values.
            if name in ("webhook_secret", "git_token"):
                changes[name] = {"changed": True}
            elif name == "env":
                # Environment values may be secrets: record which names changed, never values.
                old_env, new_env = old or {}, value or {}
                changes[name] = {"changed": sorted(k for k in set(old_env) | set(new_env)
                                                   if old_env.get(k) != new_env.get(k))}
            else:
                changes[name] = {"from": old, "to": value}
            setattr(project, name, value)
    _full_clean(project)
    if "strategy" in changes:  # a time written now must be ahead (a stored one may have passed)
        strategy_schedule_refuse_past(project.strategy, now=timezone.now())
    with transaction.atomic():
        project.save()
        if changes:
            audit_record(
                actor=actor, action="project.update", project=project,
                summary=f"changed {', '.join(sorted(changes))}", data=changes,
            )
        if "deploy_window" in changes:  # a rollout waiting for the window looks at the new one now
            for waiting in project.deployments.filter(state=State.SWITCHING, progress__window_waiting=True
                                                      ).values_list("pk", flat=True):
                transaction.on_commit(lambda pk=waiting: deployment_enqueue(deployment_id=pk))
    return project


# --- deployments ---------------------------------------------------------------------------


def _lock_project(project: Project) -> Project:
    """Serialise history writes per project (numbering, dedupe, supersede)."""
    return Project.objects.select_for_update().get(pk=project.pk)


def _next_number(project: Project) -> int:
    """Increment the project's deployment counter and return it, in one statement.

    The UPDATE also takes the project's row lock until the transaction ends, which is
    what serialises numbering and supersession per project.
    """
    table = connection.ops.quote_name(Project._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET deployment_counter = deployment_counter + 1 WHERE id = %s "
            "RETURNING deployment_counter",
            [project.pk],
        )
        (number,) = cursor.fetchone()
    project.deployment_counter = number
    return number


def deployment_create(
    *,
    project: Project,
    sha: str,
    trigger: str,
    message: str = "",
    author: str = "",
    requested_by=None,
    requested_by_name: str = "",
    source: Deployment | None = None,
    rollback_of: Deployment | None = None,
    enqueue: bool = True,
) -> Deployment:
    """Append a deployment to the project's history and enqueue it once committed.

    With enqueue=False the caller hands it to a worker itself (deployment_enqueue); the
    row is marked as handed out all the same, so if the caller never does, the outbox
    sweep does once the mark is OUTBOX_STALE_SECONDS old.

    Must be called inside a transaction.  Numbering takes the project's row lock, which
    serialises every write to this project's history until the transaction ends, so
    everything that does not need the number is prepared before it is taken, and what
    follows it is three statements: the INSERT, the supersession, the timeline.
    """
    if project.archived_at is not None:
        raise Conflict(f"{project.archived_slug or project.slug} is archived: nothing deploys to it any more.",
                       code="archived")
    if source is not None:
        config, image, digest = source.config, source.image, source.image_digest
    else:
        config, image, digest = project.runtime_config(), "", ""
    deployment = Deployment(
        project=project,
        commit_sha=sha,
        message=message[:10_000],
        author=author[:200],
        trigger=trigger,
        requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
        requested_by_name=(requested_by_name or _actor_name(requested_by))[:200],
        config=config,
        image=image,
        image_digest=digest,
        source=source,
        rollback_of=rollback_of,
        step_token=uuid.uuid4().hex,
        # Optimistic outbox mark: a failed publish clears it, and the sweep also re-sends
        # anything still queued once this mark is stale.
        enqueued_at=timezone.now(),
    )
    queued_message = (f"Queued ({deployment.get_trigger_display().lower()}"
                      f"{' by ' + deployment.requested_by_name if deployment.requested_by_name else ''}).")

    deployment.number = number = _next_number(project)  # the lock: from here on, be brief
    deployment.save(force_insert=True)
    queued = DeploymentEvent(deployment=deployment, kind=DeploymentEvent.Kind.PHASE, message=queued_message,
                             data={"phase": State.QUEUED})
    if source is None:  # a scheduled strategy: this deployment switches at the project's time
        schedule_create_for(deployment=deployment, strategy=config.get("strategy") or {}, now=timezone.now())
    if trigger != Trigger.ROLLBACK:
        # A newer deployment supersedes older ones that have not started yet (its "Queued"
        # goes in the same INSERT as their "Superseded").
        deployments_supersede_queued(locked_project=project, before_number=number,
                                     reason=f"Superseded by #{number} before it started.", with_events=[queued])
    else:
        event_save(queued)
    token, urgent = deployment.step_token, trigger == Trigger.ROLLBACK
    if enqueue:
        transaction.on_commit(
            lambda: deployment_enqueue(deployment_id=deployment.pk, token=token, fresh=True, urgent=urgent)
        )
    return deployment


def _webhook_deployment_of(*, project_id: int, sha: str) -> int | None:
    """The id of the project's webhook deployment of `sha` that has not failed, if any.

    Asked on every delivery and almost always answered "none": one plain statement (the
    partial unique index one_webhook_deployment_per_sha_unless_failed answers it), as the
    ORM's filter/exclude/only version cost about 1 ms of CPU to build
    (bench/webhook_ingest.py, docs/benchmarks.md)."""
    quote, field = connection.ops.quote_name, Deployment._meta.get_field
    pk, project_col, sha_col, trigger_col, state_col = (
        quote(Deployment._meta.pk.column), *(quote(field(n).column) for n in ("project", "commit_sha", "trigger",
                                                                             "state")))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {pk} FROM {quote(Deployment._meta.db_table)} WHERE {project_col} = %s AND {sha_col} = %s "
            f"AND {trigger_col} IN (%s, %s) AND {state_col} <> %s ORDER BY {pk} LIMIT 1",
            [project_id, sha, *WEBHOOK_TRIGGERS, State.FAILED])
        row = cursor.fetchone()
    return row[0] if row else None


def deployment_from_webhook(*, project: Project, sha: str, trigger: str, message: str,
                            author: str, sender: str) -> tuple[Deployment, bool]:
    """Create the deployment a merge asks for, or return the one already made for it.

    A merge arrives twice (pull_request closed+merged, and push with the same sha),
    in either order: the same sha from a webhook deploys once.  The common case is read
    without a lock; two deliveries racing past that read collide on the
    `one_webhook_deployment_per_sha_unless_failed` constraint, and the caller retries the delivery,
    which then finds the first one's deployment.  Returns (deployment, created).
    """
    # A failed deployment does not count: a new delivery of its commit deploys it again
    # (a redelivery of the same delivery id is refused earlier, by its unique key).
    existing_id = _webhook_deployment_of(project_id=project.pk, sha=sha)
    existing = (Deployment.objects.only("pk", "number", "trigger", "message", "author", "project_id")
                .filter(pk=existing_id).first() if existing_id is not None else None)
    if existing is not None:
        if trigger == Trigger.MERGE and existing.trigger == Trigger.PUSH:
            # The richer description of the same merge arrived second: keep it.
            Deployment.objects.filter(pk=existing.pk).update(
                trigger=Trigger.MERGE, message=message[:10_000] or existing.message,
                author=author[:200] or existing.author,
            )
        return existing, False
    # No AuditEntry here: the WebhookDelivery row the caller writes is the record of
    # what GitHub asked for (AuditEntry records what people do through pages and the API).
    deployment = deployment_create(
        project=project, sha=sha, trigger=trigger, message=message, author=author,
        requested_by_name=sender or "github",
    )
    return deployment, True


def deployment_request(*, project: Project, sha: str, actor, message: str = "") -> Deployment:
    """A manual deploy of a commit through the API or the dashboard."""
    sha = (sha or "").strip().lower()
    if not SHA_RE.match(sha) or len(sha) != 40:
        raise ValidationError("sha: give the full 40-character hexadecimal commit sha.")
    with transaction.atomic():
        deployment = deployment_create(
            project=project, sha=sha, trigger=Trigger.API, message=message, requested_by=actor,
        )
        audit_record(
            actor=actor, action="deployment.create", project=project,
            summary=f"#{deployment.number} queued for {sha[:7]}",
            data={"deployment": deployment.number, "sha": sha},
        )
    return deployment


def deployment_rollback_now(*, project: Project, number: int, actor, pin: bool = False) -> Deployment:
    """A rollback asked for by a person (API, dashboard).  With its target warm (and
    SWITCHBACK_ROLLBACK_IN_REQUEST, on by default) the whole rollback happens here, in the
    one transaction that records it: checked, numbered, switched and live at its commit
    (rollback_switch_locked), with no queue hop and no second lock.  A cold target, or any
    trouble on the way, is recorded and handed to a worker as every other rollback is."""
    if not settings.SWITCHBACK.get("ROLLBACK_IN_REQUEST", True):
        return deployment_rollback(project=project, number=number, actor=actor, pin=pin)
    from . import engine

    # The runtime is asked before the lock is taken; the retirement check under it catches
    # a target retired in between.
    if engine.rollback_target_warm(project=project, number=number):
        try:
            # One transaction; its timeline entries and audit entry are written after the
            # switch, with the same commit (timeline_deferred).
            with transaction.atomic(), timeline_deferred():
                locked = _lock_project(project)
                deployment, record = _rollback_record(locked=locked, number=number, actor=actor, pin=pin,
                                                      enqueue=False)
                live = engine.rollback_switch_locked(deployment=deployment, locked_project=locked)
                record()
                if live:  # what the switch left to tidy goes to a worker, not before the answer
                    transaction.on_commit(lambda: _revisions_tidy_publish(project_id=locked.pk))
                else:  # retired meanwhile: a worker starts it again
                    token = deployment.step_token
                    transaction.on_commit(lambda: deployment_enqueue(
                        deployment_id=deployment.pk, token=token, fresh=True, urgent=True))
        except (TransientError, PermanentError, DatabaseError) as exc:
            logger.warning("in-request switch to #%s of %s handed to a worker: %s", number, project.slug, exc)
        except SwitchbackError:
            raise  # the caller's own errors (not found, not rollbackable, ...): nothing was written
        except Exception:  # noqa: BLE001 - a bug here must not lose the rollback: the worker path
            logger.exception("in-request switch to #%s of %s failed; handed to a worker", number, project.slug)
        else:
            if live:
                deployment.refresh_from_db()
            return deployment
    return deployment_rollback(project=project, number=number, actor=actor, pin=pin)


def _revisions_tidy_publish(*, project_id: int) -> None:
    try:
        dispatch.revisions_tidy_send(project_id=project_id)
    except Exception:  # noqa: BLE001 - housekeeping: the next switch and the reconciler tidy too
        logger.warning("could not publish the tidying of project %s after a rollback", project_id)


def deployment_rollback(*, project: Project, number: int, actor, pin: bool = False,
                        enqueue: bool = True) -> Deployment:
    """Reroute traffic to an earlier deployment that went live, without rebuilding.

    pin: also pin the project, so the next merges are built and warmed but do not switch
    (they could bring the bug back) until someone unpins it or promotes one.
    enqueue: hand it to a worker on commit (False: the caller does, see deployment_create).
    """
    with transaction.atomic():
        locked = _lock_project(project)
        deployment, record = _rollback_record(locked=locked, number=number, actor=actor, pin=pin, enqueue=enqueue)
        record()
    return deployment


def _rollback_record(*, locked: Project, number: int, actor, pin: bool,
                     enqueue: bool) -> tuple[Deployment, Callable[[], None]]:
    """Check and record a rollback to #`number`; the caller holds `locked`'s row lock.
    Returns the deployment and what writes its audit entry and, with `pin`, pins the project
    (the caller calls it in the same transaction, after the switch when the switch is made
    there)."""
    target = locked.deployments.select_related("source").filter(number=number).first()
    if target is None:
        raise NotFound(f"Deployment #{number} does not exist in {locked.slug}.")
    if not target.went_live or not target.image:
        raise Conflict(
            f"Deployment #{number} never went live successfully (state: {target.state}); "
            "only a deployment that went live can be rolled back to.", code="not_rollbackable",
        )
    template = (target.config or {}).get("image_template") or ""
    if template:
        # A prebuilt image the operator has since taken off the allow-list stays off.
        try:
            image_template_validate(template=template, project_slug=locked.slug)
        except ValidationError as exc:
            raise ValidationError(f"Deployment #{number} ran {target.image}, which this platform no "
                                  f"longer allows: {exc.message}", code=exc.code) from exc
    previous = (Deployment.objects.select_related("source").filter(pk=locked.live_deployment_id).first()
                if locked.live_deployment_id is not None else None)
    if previous is not None and _origin(previous).pk == _origin(target).pk:  # the same image and revision serve now
        raise Conflict(f"Deployment #{number} is already live.", code="already_live")
    if not lifecycle.revisions_kept_contains(project=locked, revision=target.revision,
                                             live=previous.revision if previous is not None else None):
        raise Conflict(
            f"Deployment #{number} is older than the {locked.keep_images} revision(s) this project keeps "
            f"(keep_images): its image has been pruned. Redeploy #{number} rebuilds commit "
            f"{target.short_sha}.", code="target_not_kept",
        )
    deployment = deployment_create(
        project=locked, sha=target.commit_sha, trigger=Trigger.ROLLBACK,
        message=f"Rollback to #{target.number}", author=target.author, requested_by=actor,
        source=_origin(target), rollback_of=target, enqueue=enqueue,
    )

    def record() -> None:
        audit_record(
            actor=actor, action="deployment.rollback", project=locked,
            summary=f"#{deployment.number}: rollback to #{target.number}"
            + (f" (live was #{previous.number})" if previous else ""),
            data={"deployment": deployment.number, "to": target.number,
                  "from": previous.number if previous else None},
        )
        if pin:
            _pin(project=locked, actor=actor, reason=f"Rolled back to #{target.number} (#{deployment.number}).")

    return deployment, record


def _pin(*, project: Project, actor, reason: str) -> None:
    project.pinned_at, project.pinned_by_name, project.pinned_reason = timezone.now(), _actor_name(actor), reason
    project.save(update_fields=["pinned_at", "pinned_by_name", "pinned_reason"])
    audit_record(actor=actor, action="project.pin", project=project, summary=f"pinned: {reason}")


def project_pin(*, project: Project, actor, reason: str = "") -> Project:
    """Pause auto-deploy: merges are still recorded, built and warmed, but do not switch."""
    with transaction.atomic():
        locked = _lock_project(project)
        _pin(project=locked, actor=actor, reason=(reason or "Pinned by hand.")[:300])
    return locked


def project_unpin(*, project: Project, actor) -> Project:
    """Resume auto-deploy: a merge held by the pin switches now."""
    with transaction.atomic():
        locked = _lock_project(project)
        if locked.pinned_at is None:
            raise Conflict(f"{locked.slug} is not pinned.", code="not_pinned")
        locked.pinned_at, locked.pinned_by_name, locked.pinned_reason = None, "", ""
        locked.save(update_fields=["pinned_at", "pinned_by_name", "pinned_reason"])
        audit_record(actor=actor, action="project.unpin", project=locked, summary="unpinned: merges switch again")
        for held in locked.deployments.filter(state=State.SWITCHING, progress__pin_held=True).values_list(
                "pk", flat=True):
            transaction.on_commit(lambda pk=held: deployment_enqueue(deployment_id=pk))
    return locked


def deployment_redeploy(*, project: Project, number: int, actor) -> Deployment:
    """Run an earlier deployment's commit again with the project's current settings."""
    with transaction.atomic():
        target = project.deployments.filter(number=number).first()
        if target is None:
            raise NotFound(f"Deployment #{number} does not exist in {project.slug}.")
        deployment = deployment_create(
            project=project, sha=target.commit_sha, trigger=Trigger.REDEPLOY,
            message=f"Redeploy of #{target.number}", author=target.author, requested_by=actor,
        )
        audit_record(
            actor=actor, action="deployment.redeploy", project=project,
            summary=f"#{deployment.number}: redeploy of #{target.number}",
            data={"deployment": deployment.number, "of": target.number},
        )
    return deployment


def _origin(deployment: Deployment) -> Deployment:
    """The deployment that first built and ran this image (rollbacks chain back to it)."""
    while deployment.source_id is not None:
        deployment = deployment.source
    return deployment


# --- the outbox ----------------------------------------------------------------------------


def deployment_enqueue(*, deployment_id: int, countdown: float = 0, token: str = "", fresh: bool = False,
                       urgent: bool | None = None) -> bool:
    """Hand the deployment's next step to a worker.  A broker outage is not an error here.

    The deployment row is the outbox: if publishing fails, `enqueued_at` stays empty (or
    stale) and `outbox_sweep` publishes it once the broker is back, so no merge is lost.
    Each hand-out carries a fresh token; a task whose token is no longer current exits,
    so a re-enqueued rollout never runs as two parallel chains.
    """
    if not token:
        token = uuid.uuid4().hex
        Deployment.objects.filter(pk=deployment_id).update(step_token=token)
    if urgent is None:
        # Rollbacks, and every step of the switching phase (weights, a scheduled switch, a
        # canary's next step: no builds), go to the switch queue: a busy build worker would
        # make a scheduled switch late by as long as the build takes.
        urgent = Deployment.objects.filter(pk=deployment_id).filter(
            Q(trigger=Trigger.ROLLBACK) | Q(state=State.SWITCHING)).exists()
    try:
        dispatch.rollout_advance_send(deployment_id=deployment_id, token=token, countdown=countdown, urgent=urgent)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep retries later
        logger.warning("could not enqueue deployment %s, the sweep will retry: %s",
                       deployment_id, exc.__class__.__name__)
        Deployment.objects.filter(pk=deployment_id, step_token=token).update(enqueued_at=None)
        return False
    if countdown or not fresh:
        expected = timezone.now() + timedelta(seconds=countdown)
        Deployment.objects.filter(pk=deployment_id, step_token=token).update(enqueued_at=expected)
    return True


def outbox_sweep(*, stale_after: float | None = None) -> int:
    """Hand out deployments never published (broker down) or whose rollout stalled."""
    if stale_after is None:
        stale_after = settings.SWITCHBACK["OUTBOX_STALE_SECONDS"]
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    waiting = Deployment.objects.filter(state__in=(State.QUEUED, *ACTIVE_STATES)).filter(
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=cutoff)
    )
    count = 0
    for deployment_id in waiting.order_by("id").values_list("id", flat=True):
        if not deployment_enqueue(deployment_id=deployment_id):
            break  # the broker is still down: try again on the next sweep
        count += 1
    return count


def deployment_auto_rollback(*, deployment: Deployment, reason: str) -> Deployment | None:
    """A live revision failed after the switch: put the previous one back at once."""
    with transaction.atomic():
        project = _lock_project(deployment.project)
        deployment.refresh_from_db()
        if project.live_deployment_id != deployment.pk:
            return None
        if deployment_transition(deployment=deployment, expected=(State.SUCCEEDED,), to=State.FAILED,
                                 reason=f"Failed after going live: {reason}") is None:
            return None
        previous_number = Progress.of(deployment).previous_live
        target = project.deployments.filter(number=previous_number).first()
        if target is None or not target.image:
            return None
        rollback = deployment_create(
            project=project, sha=target.commit_sha, trigger=Trigger.ROLLBACK,
            message=f"Automatic rollback to #{target.number}: #{deployment.number} failed after going live",
            author=target.author, requested_by_name="switchback",
            source=_origin(target), rollback_of=target,
        )
        audit_record(
            actor=None, actor_name="switchback", action="deployment.rollback", project=project,
            summary=f"#{rollback.number}: automatic rollback to #{target.number} "
            f"(#{deployment.number} failed after going live: {reason})",
            data={"deployment": rollback.number, "to": target.number, "from": deployment.number},
        )
    return rollback


# --- acting on a rollout in flight ----------------------------------------------------------


def _deployment_for_action(project: Project, number: int) -> Deployment:
    deployment = (Deployment.objects.select_related("project", "project__live_deployment", "source")
                  .filter(project_id=project.pk, number=number).first())
    if deployment is None:
        raise NotFound(f"Deployment #{number} does not exist in {project.slug}.")
    return deployment


def deployment_waiting_step(*, deployment: Deployment) -> int | None:
    """The canary step (0-based) the rollout is waiting at or holding, else None."""
    return Strategy.of(RolloutConfig.of(deployment)).waiting_step(
        switching=deployment.state == State.SWITCHING, progress=Progress.of(deployment))


def deployment_promote(*, project: Project, number: int, actor, full: bool = False) -> Deployment:
    """Move a waiting rollout on now.

    At a canary step: end its wait (or hold) and go to the next step, or with `full` skip
    every remaining step and switch all traffic.  Waiting for its scheduled time: bring the
    time forward (it switches as soon as it is ready).  Waiting for the deploy window:
    refused, that takes an override with a reason (`deployment_window_override`).
    """
    with transaction.atomic():
        _lock_project(project)
        deployment = _deployment_for_action(project, number)
        now = timezone.now()
        waiting = deployment_waiting_for(deployment=deployment, now=now)
        name = _actor_name(actor)
        if waiting is not None and waiting.kind == "window":
            why = Progress.of(deployment).window_reason
            raise Conflict(f"Deployment #{number} waits for the deploy window ({why}); "
                           "deploying outside it is an override and needs a reason.", code="window_closed")
        if waiting is not None and waiting.kind == "schedule":
            schedule_bring_forward(deployment=deployment, actor_name=name, now=now)
            if full:
                progress_change(deployment=deployment, change=Progress.promote_full)
            audit_record(actor=actor, action="deployment.promote", project=project,
                         summary=f"#{number}: scheduled switch brought forward to now"
                         + (" (all steps)" if full else ""),
                         data={"deployment": number, "schedule": True, "full": full})
            event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE,
                         message=f"Promoted by {name}: the scheduled switch is brought forward to now"
                         + (" and every canary step skipped." if full else "."))
            if deployment.state == State.SWITCHING:  # earlier phases reach the schedule by themselves
                transaction.on_commit(lambda: deployment_enqueue(deployment_id=deployment.pk))
            deployment.refresh_from_db()
            return deployment
        step = deployment_waiting_step(deployment=deployment)
        if step is None:
            raise Conflict(
                f"Deployment #{number} is not waiting at a canary step (state: {deployment.state}); "
                "there is nothing to promote.", code="not_waiting",
            )
        steps = RolloutConfig.of(deployment).steps
        weight = steps[step].weight if step < len(steps) else None
        at_pin = Progress.of(deployment).pin_held
        progress_change(deployment=deployment, change=Progress.promote_full if full else Progress.promote)
        if full:
            summary = f"#{number}: promoted to 100%, skipping every remaining step" + (" and the pin" if at_pin else "")
            message = f"Promoted to 100% by {name}: every remaining step skipped."
        elif at_pin:
            summary, message = f"#{number}: promoted past the project's pin", f"Promoted past the pin by {name}."
        else:
            summary = (f"#{number}: promoted past step {step + 1}/{len(steps)}"
                       + (f" ({weight}% of traffic)" if weight is not None else ""))
            message = f"Promoted past step {step + 1} by {name}."
        audit_record(
            actor=actor, action="deployment.promote", project=project, summary=summary,
            data={"deployment": number, "pin": True, **({"full": True} if full else {})} if at_pin else
            {"deployment": number, "step": step + 1, "weight": weight, **({"full": True} if full else {})},
        )
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE, message=message)
        # A fresh token retires the chain sleeping out the step's wait.
        transaction.on_commit(lambda: deployment_enqueue(deployment_id=deployment.pk))
    deployment.refresh_from_db()
    return deployment


def deployment_schedule_change(*, project: Project, number: int, actor, data) -> Deployment:
    """Set or change when a deployment switches ({"at": local time, "tz": zone}); audited."""
    at, tz = schedule_input_check(data)
    with transaction.atomic():
        _lock_project(project)
        deployment = _deployment_for_action(project, number)
        before = deployment_waiting_for(deployment=deployment, now=timezone.now())
        schedule = schedule_set(deployment=deployment, at=at, tz=tz, actor_name=_actor_name(actor),
                                now=timezone.now())
        audit_record(actor=actor, action="deployment.schedule", project=project,
                     summary=f"#{number}: switches at {schedule.local_time} {schedule.tz}",
                     data={"deployment": number, "local_time": schedule.local_time, "tz": schedule.tz,
                           "at": schedule.at.isoformat(),
                           "before": before.until.isoformat() if before and before.until else None})
        if deployment.state == State.SWITCHING:  # a fresh token retires the chain sleeping to the old time
            transaction.on_commit(lambda: deployment_enqueue(deployment_id=deployment.pk))
    deployment.refresh_from_db()
    return deployment


MAX_REASON = 300


def deployment_window_override(*, project: Project, number: int, actor, reason) -> Deployment:
    """Deploy now although the deploy window is closed: needs a reason, which is audited."""
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise ValidationError("reason: deploying outside the deploy window needs a reason.", code="reason_required")
    if len(reason) > MAX_REASON:
        raise ValidationError(f"reason: at most {MAX_REASON} characters.")
    with transaction.atomic():
        _lock_project(project)
        deployment = _deployment_for_action(project, number)
        if deployment.is_final:
            raise Conflict(f"Deployment #{number} has already finished "
                           f"({deployment.get_state_display().lower()}).", code="already_finished")
        if deployment.trigger == Trigger.ROLLBACK:
            raise Conflict("A rollback never waits for the deploy window.", code="rollback_not_held")
        was_waiting = Progress.of(deployment).window_waiting

        def override(progress: Progress) -> None:
            progress.window_override = reason
            progress.window_waiting, progress.window_until, progress.window_reason = False, None, ""

        progress_change(deployment=deployment, change=override)
        name = _actor_name(actor)
        audit_record(actor=actor, action="deployment.window_override", project=project,
                     summary=f"#{number}: deploy window overridden: {reason}",
                     data={"deployment": number, "reason": reason, "was_waiting": was_waiting})
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE,
                     message=f"Deploy window overridden by {name}: {reason}")
        if deployment.state == State.SWITCHING:
            transaction.on_commit(lambda: deployment_enqueue(deployment_id=deployment.pk))
    deployment.refresh_from_db()
    return deployment


def deployment_abort(*, project: Project, number: int, actor) -> Deployment:
    """Stop a rollout in flight: it fails, and any canary traffic goes back to the live revision."""
    from . import engine

    deployment = _deployment_for_action(project, number)
    if deployment.is_final:
        raise Conflict(
            f"Deployment #{number} has already finished ({deployment.get_state_display().lower()}); "
            "there is nothing to abort.", code="already_finished",
        )
    previous_state = deployment.state
    reason = f"Aborted by {_actor_name(actor)}"
    engine.rollout_fail(deployment=deployment, reason=reason)
    deployment.refresh_from_db()
    if deployment.failure_reason != reason:
        raise Conflict(f"Deployment #{number} finished ({deployment.state}) before it could be aborted.",
                       code="already_finished")
    audit_record(
        actor=actor, action="deployment.abort", project=project,
        summary=f"#{number}: aborted while {previous_state}",
        data={"deployment": number, "state": previous_state,
              "live": project.live_deployment.number if project.live_deployment_id else None},
    )
    return deployment
