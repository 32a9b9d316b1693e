"""The rollout engine: advances one deployment one step at a time.

State lives in PostgreSQL; every step is idempotent and moves the deployment forward
with a compare-and-set on its state, so a retried, duplicated or resumed step does no
harm.  A step returns how long to wait before the next one (None: nothing more to do).

    queued -> building -> starting -> verifying -> switching -> succeeded
                 \\___________\\___________\\__________\\-> failed (traffic untouched)

Strategies are data (`config["strategy"]["steps"]`: [{"weight": 10, "wait": 60}, ...]),
interpreted here; an empty strategy switches all traffic at once when ready.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import DatabaseError, transaction
from django.utils import timezone

from .errors import PermanentError, TransientError
from .image_policy import image_template_render
from .models import ACTIVE_STATES, Deployment, DeploymentEvent, Project, State, Trigger
from .runtimes import runtime_for
from .runtimes.base import HealthState, Runtime
from .services import deployment_finish, deployment_heartbeat, event_record
from .specs import build_spec_for, revision_spec_for

logger = logging.getLogger(__name__)

CONTINUE = 0.0  # run the next step at once
WAIT_FOR_TURN = 2.0  # another rollout of the project is in progress


def _runtime(deployment: Deployment) -> Runtime:
    """Where the deployment's revision runs: the runtime (and cluster) it was created for."""
    config = deployment.config
    if config.get("runtime"):
        return runtime_for(runtime=config["runtime"], cluster=config.get("cluster", ""))
    return runtime_for(runtime=deployment.project.runtime, cluster=deployment.project.cluster)


def _advance(deployment: Deployment, expected: str, new: str, **fields) -> bool:
    """Compare-and-set the state; False when someone else moved it first."""
    updated = Deployment.objects.filter(pk=deployment.pk, state=expected).update(
        state=new, **fields
    )
    if updated:
        deployment.state = new
        for name, value in fields.items():
            setattr(deployment, name, value)
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.PHASE,
                     message=f"{State(new).label}.")
    return bool(updated)


def _save_progress(deployment: Deployment, **changes) -> None:
    """Merge into the stored progress under a row lock: a promote may write it concurrently."""
    with transaction.atomic():
        stored = (
            Deployment.objects.select_for_update().filter(pk=deployment.pk).values_list("progress", flat=True).first()
        )
        deployment.progress = {**(stored or {}), **changes}
        Deployment.objects.filter(pk=deployment.pk).update(progress=deployment.progress)


def rollout_step(*, deployment_id: int) -> float | None:
    deployment = Deployment.objects.select_related("project", "source").filter(pk=deployment_id).first()
    if deployment is None or deployment.is_final:
        return None
    handler = _HANDLERS[deployment.state]
    try:
        return handler(deployment)
    except PermanentError as exc:
        rollout_fail(deployment=deployment, reason=exc.message)
        return None
    except (TransientError, DatabaseError):
        raise  # the task retries these
    except Exception as exc:
        # A bug must not leave a rollout stuck forever: fail it visibly, keep the trace in logs.
        logger.exception("internal error advancing %s", deployment)
        rollout_fail(deployment=deployment,
                     reason=f"Internal error while {deployment.state}: {exc.__class__.__name__}: {exc}")
        return None


def rollout_fail(*, deployment: Deployment, reason: str) -> None:
    """Fail before the switch: traffic never moved; remove what the rollout started.

    The row lock makes "fail unless already final" atomic against a step finishing now.
    """
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().filter(pk=deployment.pk).first()
        if locked is None or locked.is_final:
            return
        started_revision = locked.state in (State.STARTING, State.VERIFYING, State.SWITCHING)
        deployment_finish(deployment=locked, state=State.FAILED, reason=reason)
    deployment.refresh_from_db()
    if deployment.progress.get("weights"):
        # A canary step had moved some traffic: give it all back to the live revision.
        live = Project.objects.select_related("live_deployment__source").get(pk=deployment.project_id).live_deployment
        if live is not None:
            _runtime(deployment).set_traffic(project=deployment.project.slug,
                                             weights={live.revision: 100})
    if started_revision:
        revision_retire_if_unused(project=deployment.project, revision=deployment.revision,
                                  drain_seconds=0, discard=True)


# --- steps ---------------------------------------------------------------------------------


def _warm(deployment: Deployment) -> bool:
    """A rollback whose target revision still runs and passes readiness: weights only."""
    if deployment.trigger != Trigger.ROLLBACK or not deployment.image:
        return False
    return _runtime(deployment).is_warm(spec=revision_spec_for(deployment))


def _step_queued(deployment: Deployment) -> float | None:
    preempted: list[Deployment] = []
    warm = _warm(deployment)
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=deployment.project_id)
        deployment.refresh_from_db()
        if deployment.state != State.QUEUED:
            return CONTINUE
        active = list(project.deployments.filter(state__in=ACTIVE_STATES).exclude(pk=deployment.pk))
        if active:
            if deployment.trigger != Trigger.ROLLBACK:
                return WAIT_FOR_TURN
            for other in active:
                deployment_finish(
                    deployment=other, state=State.CANCELLED,
                    reason=f"Preempted by rollback #{deployment.number}.",
                )
                preempted.append(other)
        now = timezone.now()
        if warm:
            event_record(deployment=deployment, kind=DeploymentEvent.Kind.PROBE,
                         message=f"Revision {deployment.revision} is warm and ready: only the traffic changes.")
            _advance(deployment, State.QUEUED, State.SWITCHING, started_at=now, ready_at=now)
        else:
            _advance(deployment, State.QUEUED, State.STARTING if deployment.image else State.BUILDING,
                     started_at=now)
    if warm and deployment.state == State.SWITCHING and not preempted:
        return _go_live(deployment)  # straight on: the switch is the whole rollback
    for other in preempted:
        # Weights a preempted canary had set are overwritten by this rollback's switch.
        if other.revision != deployment.revision:
            revision_retire_if_unused(project=deployment.project, revision=other.revision,
                                      drain_seconds=0)
    return CONTINUE


def _build_logger(deployment: Deployment) -> Callable[[str], None]:
    last_touch = [timezone.now()]

    def log(line: str) -> None:
        line = line.rstrip()
        if line:
            event_record(deployment=deployment, kind=DeploymentEvent.Kind.LOG, message=line[:4000])
        now = timezone.now()
        if now - last_touch[0] > timedelta(seconds=5):
            # A heartbeat, so the outbox sweep does not think this rollout stalled.
            deployment_heartbeat(deployment_id=deployment.pk)
            last_touch[0] = now

    return log


def _step_building(deployment: Deployment) -> float | None:
    template = deployment.config.get("image_template") or ""
    if template:
        image = image_template_render(template=template, project_slug=deployment.project.slug,
                                      sha=deployment.commit_sha)
        event_record(deployment=deployment, message=f"Prebuilt image {image} (no build).")
        digest = ""
    else:
        built = _runtime(deployment).build(spec=build_spec_for(deployment),
                                           log=_build_logger(deployment))
        image, digest = built.ref, built.digest
        event_record(
            deployment=deployment,
            message=f"Image {image} {'reused (already built for this commit)' if built.reused else 'built'}.",
            data={"image": image, "digest": digest, "reused": built.reused},
        )
    _advance(deployment, State.BUILDING, State.STARTING, image=image, image_digest=digest,
             built_at=timezone.now())
    return CONTINUE


def _step_starting(deployment: Deployment) -> float | None:
    spec = revision_spec_for(deployment)
    _runtime(deployment).start_revision(spec=spec)
    timeout = float(deployment.config.get("ready_timeout_seconds", 120))
    deadline = timezone.now() + timedelta(seconds=timeout)
    _save_progress(deployment, ready_deadline=deadline.isoformat())
    event_record(deployment=deployment,
                 message=f"Started revision {spec.revision}: {spec.replicas} replica(s) of {spec.image}.")
    _advance(deployment, State.STARTING, State.VERIFYING)
    return CONTINUE


WATCH_POLL_SECONDS = 1.0  # how often the post-switch watch looks at liveness
WATCH_SLICE_SECONDS = 10.0  # a verify step blocks at most this long on a runtime's watch


def _step_verifying(deployment: Deployment) -> float | None:
    runtime = _runtime(deployment)
    deadline = deployment.progress.get("ready_deadline")
    remaining = WATCH_SLICE_SECONDS
    if deadline:
        remaining = (timezone.datetime.fromisoformat(deadline) - timezone.now()).total_seconds()
    deployment_heartbeat(deployment_id=deployment.pk)
    health = runtime.await_health(project=deployment.project.slug, revision=deployment.revision,
                                  timeout=max(0.0, min(WATCH_SLICE_SECONDS, remaining)))
    if health.state == HealthState.READY:
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.PROBE,
                     message=f"Ready: {health.ready_replicas}/{health.replicas} replica(s) pass "
                     "startup and readiness probes.")
        _advance(deployment, State.VERIFYING, State.SWITCHING, ready_at=timezone.now())
        return CONTINUE
    if health.state == HealthState.FAILED:
        raise PermanentError(f"Revision {deployment.revision} failed its probes: {health.message}")
    deadline = deployment.progress.get("ready_deadline")
    if deadline and timezone.now() >= timezone.datetime.fromisoformat(deadline):
        timeout = deployment.config.get("ready_timeout_seconds", 120)
        raise PermanentError(
            f"Revision {deployment.revision} was not ready within {timeout}s "
            f"({health.ready_replicas}/{health.replicas} ready). {health.message}".strip()
        )
    return float(deployment.config.get("probe_period_seconds", 1.0))


def _step_switching(deployment: Deployment) -> float | None:
    project = deployment.project
    steps = (deployment.config.get("strategy") or {}).get("steps") or []
    live = Project.objects.get(pk=project.pk).live_deployment
    if live is None or live.revision == deployment.revision or not steps or deployment.trigger == Trigger.ROLLBACK:
        # Nothing to share traffic with, or a rollback (it reroutes at once, no canary).
        return _go_live(deployment)
    progress = deployment.progress
    index = int(progress.get("step", 0))
    now = timezone.now()
    if progress.get("applied_step") == index:
        until = progress.get("step_until")
        if progress.get("promoted_step") == index or (
            until and now >= timezone.datetime.fromisoformat(until)
        ):
            index += 1
            _save_progress(deployment, step=index, step_until=None)
        elif until:
            return (timezone.datetime.fromisoformat(until) - now).total_seconds()
        else:
            return None  # held until someone promotes or aborts
    if index >= len(steps):
        return _go_live(deployment)
    weight = max(0, min(100, int(steps[index].get("weight", 0))))
    weights = {deployment.revision: weight, live.revision: 100 - weight}
    _runtime(deployment).set_traffic(project=project.slug, weights=weights)
    wait = steps[index].get("wait")
    until = None if wait is None else (now + timedelta(seconds=float(wait))).isoformat()
    _save_progress(deployment, weights=weights, applied_step=index, step_until=until)
    event_record(deployment=deployment, kind=DeploymentEvent.Kind.TRAFFIC,
                 message=f"Step {index + 1}/{len(steps)}: {weight}% to revision "
                 f"{deployment.revision}, {100 - weight}% to {live.revision}"
                 + (" (held until promoted)." if wait is None else f" for {wait}s."),
                 data={"weights": weights})
    return None if wait is None else float(wait)


def _go_live(deployment: Deployment) -> float | None:
    project_slug = deployment.project.slug
    weights = {deployment.revision: 100}
    _runtime(deployment).set_traffic(project=project_slug, weights=weights)
    now = timezone.now()
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=deployment.project_id)
        previous = project.live_deployment
        if not _advance(deployment, State.SWITCHING, State.SUCCEEDED, live_at=now, finished_at=now):
            return None
        project.live_deployment = deployment
        project.save(update_fields=["live_deployment"])
        _save_progress(deployment, weights=weights,
                       previous_live=previous.number if previous else None)
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.TRAFFIC,
                     message=f"Switched: 100% of traffic to revision {deployment.revision}"
                     + (f" (was {previous.revision})." if previous else "."),
                     data={"weights": weights})
        if previous is not None and previous.revision != deployment.revision:
            keep = int(deployment.config.get("keep_warm_seconds", 30))
            _schedule_retire(project=project, revision=previous.revision, countdown=keep)
        watch = int(deployment.config.get("watch_seconds", 0))
        if watch and previous is not None:
            _schedule_watch(deployment=deployment)
    return None


def _schedule_retire(*, project: Project, revision: str, countdown: float) -> None:
    from .tasks import revision_retire

    def send() -> None:
        try:
            revision_retire.apply_async(args=[project.pk, revision], countdown=countdown, retry=False)
        except Exception:  # noqa: BLE001 - the reconciler retires unused revisions anyway
            logger.warning("could not schedule retirement of %s/%s", project.slug, revision)

    transaction.on_commit(send)


def _schedule_watch(*, deployment: Deployment) -> None:
    from .tasks import rollout_watch

    def send() -> None:
        try:
            rollout_watch.apply_async(args=[deployment.pk], retry=False)
        except Exception:  # noqa: BLE001
            logger.warning("could not schedule the watch of %s", deployment)

    transaction.on_commit(send)


_HANDLERS: dict[str, Callable[[Deployment], float | None]] = {
    State.QUEUED: _step_queued,
    State.BUILDING: _step_building,
    State.STARTING: _step_starting,
    State.VERIFYING: _step_verifying,
    State.SWITCHING: _step_switching,
}


# --- after the switch ------------------------------------------------------------------------


def rollout_watch_step(*, deployment_id: int) -> float | None:
    """While the watch window lasts, a live revision failing liveness is rolled back."""
    from .services import deployment_auto_rollback

    deployment = Deployment.objects.select_related("project", "source").get(pk=deployment_id)
    project = deployment.project
    if project.live_deployment_id != deployment.pk or deployment.live_at is None:
        return None
    window = int(deployment.config.get("watch_seconds", 0))
    if timezone.now() > deployment.live_at + timedelta(seconds=window):
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.PROBE,
                     message=f"Healthy through the {window}s watch window.")
        return None
    runtime = _runtime(deployment)
    failures = [f for f in runtime.check_liveness(project=project.slug) if f.revision == deployment.revision]
    for failure in failures:
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.PROBE,
                     message=f"Liveness failed: {failure.message}")
    health = runtime.revision_health(project=project.slug, revision=deployment.revision)
    if failures or health.state == HealthState.FAILED:
        reason = failures[0].message if failures else health.message
        deployment_auto_rollback(deployment=deployment, reason=reason)
        return None
    # Liveness needs several failed probes before it reports anything; looking every
    # second (not every probe period) keeps a whole watch window cheap for the workers.
    return max(WATCH_POLL_SECONDS, float(deployment.config.get("probe_period_seconds", 1.0)))


def liveness_check(*, project: Project) -> list[str]:
    """Outside rollouts: restart replicas failing liveness and say so on the live deployment."""
    live = project.live_deployment
    if live is None:
        return []
    messages = []
    for failure in runtime_for(runtime=project.runtime, cluster=project.cluster).check_liveness(
            project=project.slug):
        target = live if failure.revision == live.revision else None
        message = f"Liveness failed on revision {failure.revision}: {failure.message}"
        if target is not None:
            event_record(deployment=target, kind=DeploymentEvent.Kind.PROBE, message=message)
        messages.append(message)
    return messages


def revision_retire_if_unused(*, project: Project, revision: str, drain_seconds: float,
                              discard: bool = False) -> bool:
    """Retire a revision unless it is live or an open deployment still needs it.

    discard: the revision never served (a failed rollout), so remove it outright.
    """
    project = Project.objects.select_related("live_deployment").get(pk=project.pk)
    if project.live_deployment is not None and project.live_deployment.revision == revision:
        return False
    for open_deployment in project.deployments.filter(
        state__in=(State.QUEUED, *ACTIVE_STATES)
    ).select_related("source"):
        if open_deployment.revision == revision:
            return False
    runtime = runtime_for(runtime=project.runtime, cluster=project.cluster)
    if discard and not Deployment.objects.filter(project=project, number=int(revision), live_at__isnull=False).exists():
        runtime.discard_revision(project=project.slug, revision=revision)
    else:
        runtime.retire_revision(project=project.slug, revision=revision, drain_seconds=drain_seconds)
    Deployment.objects.filter(project=project, retired_at__isnull=True).filter(
        number=int(revision)
    ).update(retired_at=timezone.now())
    return True


def rollout_promote(*, deployment: Deployment) -> None:
    """End the current step's wait (or hold) now; the caller enqueues the next step."""
    _save_progress(deployment, promoted_step=int(deployment.progress.get("step", 0)))
