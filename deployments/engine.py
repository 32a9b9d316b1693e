"""The rollout engine: advances one deployment one step at a time.

State lives in PostgreSQL; every step is idempotent and every change of state goes
through `transitions.deployment_transition` (compare-and-set under the project's lock), so
a retried, duplicated or resumed step does no harm.  A step returns how long to wait
before the next one (None: nothing more to do).

    queued -> building -> starting -> verifying -> switching -> succeeded
       |          \\___________\\___________\\__________\\-> failed (traffic untouched)
       +-> superseded / cancelled (a newer deployment or a rollback came first)

The strategy (`strategies.Strategy`) says what the switching phase does next; which
revisions keep running is `lifecycle`'s rule.  Runtimes are reached only through
`runtimes.base.Runtime`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from . import dispatch, gates, lifecycle, waits
from .errors import PermanentError, TransientError
from .image_policy import image_template_render
from .listeners import RolloutEvent, listeners_announce
from .models import ACTIVE_STATES, Deployment, DeploymentEvent, Project, State, Trigger
from .progress import Progress, RolloutConfig
from .routing import traffic_routing_for
from .runtimes import runtime_for
from .runtimes.base import HealthState, Runtime
from .specs import build_spec_for, revision_spec_for
from .strategies import Action, Strategy
from .timeline import deployment_heartbeat, event_record, progress_change
from .transitions import Won, deployment_transition, deployment_while_in

logger = logging.getLogger(__name__)

CONTINUE = 0.0  # run the next step at once
WAIT_FOR_TURN = 2.0  # another rollout of the project is in progress

# Kept importable from here: tests and older callers name them through the engine.
revision_retire_if_unused = lifecycle.revision_retire_if_unused


def runtime_of(deployment: Deployment) -> Runtime:
    """Where the deployment's revision runs: the runtime (and cluster) it was created for."""
    config = RolloutConfig.of(deployment)
    if config.runtime:
        return runtime_for(runtime=config.runtime, cluster=config.cluster)
    return runtime_for(runtime=deployment.project.runtime, cluster=deployment.project.cluster)


def _advance(deployment: Deployment, expected: str, new: str, locked_project: Project | None = None,
             **fields) -> bool:
    return deployment_transition(deployment=deployment, expected=(expected,), to=new, fields=fields,
                                 locked_project=locked_project) is not None


def _save_progress(deployment: Deployment, change: Callable[[Progress], None]) -> Progress:
    return progress_change(deployment=deployment, change=change)


def rollout_step(*, deployment_id: int) -> float | None:
    deployment = Deployment.objects.select_related("project", "source").filter(pk=deployment_id).first()
    if deployment is None or deployment.is_final:
        return None
    handler = _HANDLERS[deployment.state]
    try:
        delay = handler(deployment)
    except PermanentError as exc:
        rollout_fail(deployment=deployment, reason=exc.message)
        return None
    except TransientError as exc:
        if _transient_gives_up(deployment, exc.message):
            return None
        raise  # the task retries it
    except DatabaseError:
        raise  # the task retries it (and the database may not take a note now)
    except Exception as exc:
        # A bug must not leave a rollout stuck forever: fail it visibly, keep the trace in logs.
        logger.exception("internal error advancing %s", deployment)
        rollout_fail(deployment=deployment,
                     reason=f"Internal error while {deployment.state}: {exc.__class__.__name__}: {exc}")
        return None
    if Progress.of(deployment).transient_count:
        _save_progress(deployment, Progress.transient_clear)
    return delay


def transient_deadline(phase: str) -> float:
    deadlines = settings.SWITCHBACK.get("TRANSIENT_DEADLINES", {})
    return float(deadlines.get(phase, deadlines.get("default", 600)))


def _transient_gives_up(deployment: Deployment, reason: str) -> bool:
    """Count a transient failure against the phase's deadline and attempt limit (kept in
    the database, so a re-hand-out by the sweep does not reset them); past either, fail
    the deployment with the last reason.  True when it failed."""
    now = timezone.now()
    phase = deployment.state

    def note(progress: Progress) -> None:
        if progress.transient_phase != phase or progress.transient_since is None:
            progress.transient_phase, progress.transient_since, progress.transient_count = phase, now, 0
        progress.transient_count += 1
        progress.transient_reason = reason

    progress = _save_progress(deployment, note)
    deadline = transient_deadline(phase)
    attempts = int(settings.SWITCHBACK.get("TRANSIENT_MAX_ATTEMPTS", 30))
    elapsed = (now - progress.transient_since).total_seconds()
    if elapsed < deadline and progress.transient_count < attempts:
        return False
    rollout_fail(deployment=deployment,
                 reason=f"{reason} (still failing after {progress.transient_count} attempts over "
                 f"{elapsed:.0f}s while {phase}; giving up)")
    return True


def rollout_fail(*, deployment: Deployment, reason: str) -> bool:
    """Fail a rollout before it went live: traffic goes back to the live revision if a
    canary step had moved some, and what the rollout started is removed.  False when the
    deployment had already finished."""
    runtime = runtime_of(deployment)

    def give_traffic_back(project: Project, _previous: str) -> None:
        stored = Deployment.objects.filter(pk=deployment.pk).values_list("progress", flat=True).first()
        if not Progress.from_json(stored).weights:
            return
        live = (Deployment.objects.select_related("source").filter(pk=project.live_deployment_id).first()
                if project.live_deployment_id else None)
        if live is not None:
            runtime.set_traffic(project=project.slug, weights={live.revision: 100},
                                routing=traffic_routing_for(project=project))

    won = deployment_transition(deployment=deployment, to=State.FAILED, reason=reason, effect=give_traffic_back)
    if won is None:
        return False
    if won.previous in (State.STARTING, State.VERIFYING, State.SWITCHING):
        lifecycle.revision_retire_if_unused(project=deployment.project, revision=deployment.revision,
                                            drain_seconds=0, discard=True, runtime=runtime)
    return True


# --- steps ---------------------------------------------------------------------------------


def _warm(deployment: Deployment) -> bool:
    """A rollback whose target revision still runs and passes readiness: weights only."""
    if deployment.trigger != Trigger.ROLLBACK or not deployment.image:
        return False
    return runtime_of(deployment).is_warm(spec=revision_spec_for(deployment))


def rollback_target_warm(*, project: Project, number: int) -> bool:
    """Does deployment #`number`'s revision still run and pass readiness?  Asked before the
    rollback takes the project's lock (it talks to the runtime); any doubt answers False,
    and the rollback then goes the whole way through a worker."""
    target = project.deployments.select_related("source").filter(number=number).first()
    if target is None or not target.went_live or not target.image:
        return False
    origin = target.source if target.source_id else target  # a rollback's source is the revision's origin
    origin.project = project
    try:
        return runtime_of(origin).is_warm(spec=revision_spec_for(origin))
    except (TransientError, PermanentError) as exc:
        logger.info("warm check of %s #%s: %s", project.slug, number, exc.message)
        return False


def rollback_switch_locked(*, deployment: Deployment, locked_project: Project) -> bool:
    """A warm rollback's whole rollout, in the transaction that just created it and holds
    the project's row lock: what is under way is preempted, older queued deployments are
    superseded, traffic switches, and the rollback succeeds, all in one commit, with no
    queue hop and no second lock (the API request's path: most of a warm rollback's time
    was the hops between its three transactions).  Nothing newer can exist: the number was
    taken under this lock.  False, and nothing done, when the target's retirement was
    decided since the caller found it warm: the caller hands the rollback to a worker.
    What the switch leaves to tidy (lifecycle.revisions_tidy) is the caller's, once
    committed."""
    if lifecycle.revision_retired(project=locked_project, revision=deployment.revision):
        return False
    _rollback_preempts(deployment, locked_project=locked_project)
    _warm_to_switching(deployment, locked_project=locked_project)
    return _switch_all(deployment, locked_project=locked_project) is not None


def _rollback_preempts(deployment: Deployment, *, locked_project: Project) -> None:
    """A rollback takes the project's turn: what is under way is cancelled, and older
    deployments that have not started are superseded (one read, under the lock)."""
    for other in (locked_project.deployments.exclude(pk=deployment.pk)
                  .filter(Q(state__in=ACTIVE_STATES) | Q(state=State.QUEUED, number__lt=deployment.number))
                  .order_by("number")):
        if other.state == State.QUEUED:
            deployment_transition(deployment=other, expected=(State.QUEUED,), to=State.SUPERSEDED,
                                  reason=f"Superseded by rollback #{deployment.number} before it started.",
                                  locked_project=locked_project)
        else:
            deployment_transition(deployment=other, expected=ACTIVE_STATES, to=State.CANCELLED,
                                  reason=f"Preempted by rollback #{deployment.number}.", locked_project=locked_project)


def _warm_to_switching(deployment: Deployment, *, locked_project: Project) -> None:
    """A rollback whose target runs and is ready goes straight to switching."""
    now = timezone.now()
    event_record(deployment=deployment, kind=DeploymentEvent.Kind.PROBE,
                 message=f"Revision {deployment.revision} is warm and ready: only the traffic changes.")
    _advance(deployment, State.QUEUED, State.SWITCHING, locked_project=locked_project, started_at=now, ready_at=now)


def _step_queued(deployment: Deployment) -> float | None:
    """Take the project's turn.  A rollback preempts older rollouts and supersedes older
    queued deployments; any deployment yields to a newer one already under way or live,
    so the end state is always the later request."""
    warm = _warm(deployment)
    is_rollback = deployment.trigger == Trigger.ROLLBACK
    superseded_held: list[str] = []
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=deployment.project_id)
        deployment.refresh_from_db()
        if deployment.state != State.QUEUED:
            return CONTINUE
        others = project.deployments.exclude(pk=deployment.pk)
        newer = list(others.filter(number__gt=deployment.number)
                     .filter(Q(state__in=ACTIVE_STATES) | Q(live_at__isnull=False))
                     .order_by("number").values_list("number", flat=True))
        if newer:
            deployment_transition(deployment=deployment, expected=(State.QUEUED,), to=State.SUPERSEDED,
                                  reason=f"Superseded by #{newer[-1]} before it started.", locked_project=project)
            return None
        active = list(others.filter(state__in=ACTIVE_STATES))
        switching = [other for other in active if other.state == State.SWITCHING and other.trigger != Trigger.ROLLBACK]
        if switching and len(switching) == len(active) and not is_rollback:
            # A newer deployment replaces one that is ready and waiting (at the pin, for its
            # schedule or the deploy window) or mid-canary: the routes go back to the
            # stable revision first, then this one starts over from the beginning.
            for other in switching:
                deployment_transition(deployment=other, expected=(State.SWITCHING,), to=State.SUPERSEDED,
                                      reason=f"Superseded by #{deployment.number} {_while(other)}.",
                                      effect=_traffic_back_to_live(other, f"superseded by #{deployment.number}"),
                                      locked_project=project)
                superseded_held.append(other.revision)
            active = []
        if active and not is_rollback:
            return WAIT_FOR_TURN
        if is_rollback:
            _rollback_preempts(deployment, locked_project=project)
        if warm and lifecycle.revision_retired(project=project, revision=deployment.revision):
            warm = False  # its retirement was decided meanwhile: start it again
        if warm:
            _warm_to_switching(deployment, locked_project=project)
        else:
            _advance(deployment, State.QUEUED, State.STARTING if deployment.image else State.BUILDING,
                     locked_project=project, started_at=timezone.now())
    for revision in superseded_held:  # started and never served: nobody needs it now
        lifecycle.revision_retire_if_unused(project=deployment.project, revision=revision, drain_seconds=0,
                                            discard=True, runtime=runtime_of(deployment))
    if warm and deployment.state == State.SWITCHING:
        return _go_live(deployment)  # straight on: the switch is the whole rollback
    return CONTINUE


def _while(deployment: Deployment) -> str:
    progress = Progress.of(deployment)
    if progress.pin_held:
        return "while held by the pin"
    if progress.weights:
        return "mid-canary; its traffic went back to the live revision"
    return "while it waited to switch"


def _traffic_back_to_live(deployment: Deployment, why: str):
    """The effect that gives a canary's share back to the live revision (under the lock)."""
    def effect(project: Project, _previous: str) -> None:
        stored = Deployment.objects.filter(pk=deployment.pk).values_list("progress", flat=True).first()
        if not Progress.from_json(stored).weights or not project.live_deployment_id:
            return
        live = Deployment.objects.select_related("source").get(pk=project.live_deployment_id)
        runtime_of(deployment).set_traffic(project=project.slug, weights={live.revision: 100},
                                           routing=traffic_routing_for(project=project))
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.TRAFFIC,
                     message=f"Reset: 100% of traffic back to revision {live.revision} ({why}).",
                     data={"weights": {live.revision: 100}})

    return effect


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
    template = RolloutConfig.of(deployment).image_template
    fields: dict[str, str] = {}
    if template:
        image = image_template_render(template=template, project_slug=deployment.project.slug,
                                      sha=deployment.commit_sha)
        event_record(deployment=deployment, message=f"Prebuilt image {image} (no build).")
        digest = ""
    else:
        spec = dataclasses.replace(build_spec_for(deployment),
                                   keep_shas=lifecycle.images_kept(project=deployment.project))
        built = runtime_of(deployment).build(spec=spec, log=_build_logger(deployment))
        image, digest = built.ref, built.digest
        event_record(
            deployment=deployment,
            message=f"Image {image} {'reused (already built for this commit)' if built.reused else 'built'}.",
            data={"image": image, "digest": digest, "reused": built.reused},
        )
        # A deploy that named only a sha shows the commit's own message and author.
        if not deployment.message and built.commit_message:
            fields["message"] = built.commit_message
        if not deployment.author and built.commit_author:
            fields["author"] = built.commit_author
    _advance(deployment, State.BUILDING, State.STARTING, image=image, image_digest=digest,
             built_at=timezone.now(), **fields)
    return CONTINUE


def _step_starting(deployment: Deployment) -> float | None:
    spec = revision_spec_for(deployment)
    lifecycle.revision_start(project=deployment.project, runtime=runtime_of(deployment), spec=spec)
    deadline = timezone.now() + timedelta(seconds=RolloutConfig.of(deployment).ready_timeout_seconds)

    def set_deadline(progress: Progress) -> None:
        progress.ready_deadline = deadline

    _save_progress(deployment, set_deadline)
    event_record(deployment=deployment,
                 message=f"Started revision {spec.revision}: {spec.replicas} replica(s) of {spec.image}.")
    _advance(deployment, State.STARTING, State.VERIFYING)
    return CONTINUE


WATCH_SLICE_SECONDS = 10.0  # a verify step blocks at most this long on a runtime's watch


def _step_verifying(deployment: Deployment) -> float | None:
    runtime = runtime_of(deployment)
    config = RolloutConfig.of(deployment)
    deadline = Progress.of(deployment).ready_deadline
    remaining = WATCH_SLICE_SECONDS
    if deadline is not None:
        remaining = (deadline - timezone.now()).total_seconds()
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
    if deadline is not None and timezone.now() >= deadline:
        raise PermanentError(
            f"Revision {deployment.revision} was not ready within {config.ready_timeout_seconds:g}s "
            f"({health.ready_replicas}/{health.replicas} ready). {health.message}".strip()
        )
    return config.probe_period_seconds


def _held_by_pin(deployment: Deployment) -> bool:
    """A merge on a pinned project is built and warmed, then waits here (unpin or promote).

    Decided under the project's lock, which unpin takes too: an unpin either comes first
    (no hold) or finds the hold and hands the deployment out again.
    """
    if deployment.trigger not in (Trigger.MERGE, Trigger.PUSH) or Progress.of(deployment).pin_released:
        return False
    held = {"now": False, "new": False}

    def hold(project: Project, _state: str) -> None:
        progress = Progress.from_json(Deployment.objects.filter(pk=deployment.pk).values_list(
            "progress", flat=True).first())
        if project.pinned_at is None or progress.pin_released:
            return
        held["now"], held["new"] = True, not progress.pin_held
        if held["new"]:
            _save_progress(deployment, lambda p: setattr(p, "pin_held", True))
            event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE,
                         message=f"Ready and warm, held: {project.slug} is pinned. "
                         "Unpin the project or promote this deployment to switch.")

    deployment_while_in(deployment=deployment, states=(State.SWITCHING,), effect=hold)
    return held["now"]


def _step_switching(deployment: Deployment) -> float | None:
    project = deployment.project
    if _held_by_pin(deployment):
        return None  # unpin or promote hands it out again
    wait = waits.rollout_wait_before_traffic(deployment=deployment, now=timezone.now())
    if wait is not None:  # its scheduled time, or the deploy window: promote/override/change re-hand it
        return wait.seconds if wait.action == Action.WAIT else None
    config = RolloutConfig.of(deployment)
    strategy = Strategy.of(config)
    live = Project.objects.get(pk=project.pk).live_deployment
    has_other_live = live is not None and live.revision != deployment.revision
    if not strategy.shares_traffic(is_rollback=deployment.trigger == Trigger.ROLLBACK,
                                   has_other_live=has_other_live):
        return _go_live(deployment)
    now = timezone.now()
    step = strategy.next_step(Progress.of(deployment), now)
    # Metric gates (deployments.gates) watch each step: a failure rolls back at once, and
    # a step whose gate has not passed (too little traffic) does not move on.
    gate = gates.gate_during_rollout(deployment=deployment, runtime=runtime_of(deployment), step=step,
                                     stable=live.revision if has_other_live else None, now=now)
    if gate.failed:
        rollout_fail(deployment=deployment, reason=gate.reason)
        return None
    if gate.wait is not None:
        return gate.wait
    if step.action == Action.WAIT:
        return step.seconds
    if step.action == Action.HOLD:
        return None  # held until someone promotes or aborts
    if step.action == Action.GO_LIVE:
        return _go_live(deployment)
    return gates.gate_cap(deployment=deployment, delay=_apply_step(deployment, strategy, step.index, now))


def _apply_step(deployment: Deployment, strategy: Strategy, index: int, now) -> float | None:
    """Set a canary step's weights, if the rollout still owns the traffic (not aborted, not
    preempted, not live already): checked and applied under the project's lock."""
    weight = strategy.steps[index].weight
    wait = strategy.steps[index].wait
    runtime = runtime_of(deployment)
    applied: dict = {}

    def set_weights(project: Project, _state: str) -> None:
        live = Deployment.objects.select_related("source").get(pk=project.live_deployment_id)
        weights = {deployment.revision: weight, live.revision: 100 - weight}
        # The project's header/cookie reaches this revision while it is the canary.
        runtime.set_traffic(project=project.slug, weights=weights,
                            routing=traffic_routing_for(project=project, preview=deployment.revision))
        _save_progress(deployment, lambda progress: strategy.apply(progress, index, now, weights))
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.TRAFFIC,
                     message=f"Step {index + 1}/{len(strategy.steps)}: {weight}% to revision "
                     f"{deployment.revision}, {100 - weight}% to {live.revision}"
                     + (f" until {strategy.steps[index].until:%Y-%m-%d %H:%M:%S} UTC." if strategy.steps[index].until
                        else " (held until promoted)." if wait is None else f" for {wait:g}s."),
                     data={"weights": weights, "step": index})
        applied["weights"] = weights
        if wait is None:
            listeners_announce(event=RolloutEvent.PROMOTION_WAITING, deployment=deployment)

    if not deployment_while_in(deployment=deployment, states=(State.SWITCHING,), effect=set_weights):
        return None  # someone else owns the traffic now
    return None if wait is None else wait


def _go_live(deployment: Deployment) -> float | None:
    """Switch all traffic to the revision, once the switch has won under the project's lock."""
    if _switch_all(deployment) is not None:
        lifecycle.revisions_tidy(project=deployment.project, runtime=runtime_of(deployment))
    return None


def _switch_all(deployment: Deployment, locked_project: Project | None = None) -> Won | None:
    """The transition to live: 100% of traffic to the revision, if it is still switching.
    `locked_project`: the caller's transaction holds the project's lock (see
    deployment_transition)."""
    runtime = runtime_of(deployment)
    revision = deployment.revision
    weights = {revision: 100}
    config = RolloutConfig.of(deployment)
    now = timezone.now()

    def switch(project: Project, _previous_state: str) -> None:
        previous_id = project.live_deployment_id
        # The traffic first: what only the timeline needs is read after it.
        runtime.set_traffic(project=project.slug, weights=weights, routing=traffic_routing_for(project=project))
        previous = (Deployment.objects.select_related("source").filter(pk=previous_id).first()
                    if previous_id else None)
        project.live_deployment = deployment
        project.save(update_fields=["live_deployment"])

        def note(progress: Progress) -> None:
            progress.weights = weights
            progress.previous_live = previous.number if previous else None

        _save_progress(deployment, note)
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.TRAFFIC,
                     message=f"Switched: 100% of traffic to revision {revision}"
                     + (f" (was {previous.revision})." if previous else "."),
                     data={"weights": weights})
        if previous is not None and previous.revision != revision:
            project_id, old = project.pk, previous.revision
            transaction.on_commit(lambda: _send_quietly(
                dispatch.revision_retire_send, project_id=project_id, revision=old,
                countdown=config.keep_warm_seconds))
        if config.watch_seconds and previous is not None:
            transaction.on_commit(lambda: _send_quietly(dispatch.rollout_watch_send, deployment_id=deployment.pk))

    return deployment_transition(deployment=deployment, expected=(State.SWITCHING,), to=State.SUCCEEDED,
                                 fields={"live_at": now, "finished_at": now}, effect=switch,
                                 locked_project=locked_project)


def _send_quietly(send: Callable[..., None], **kwargs) -> None:
    try:
        send(**kwargs)
    except Exception:  # noqa: BLE001 - the reconciler and the liveness sweep cover a lost message
        logger.warning("could not publish %s %s", send.__name__, kwargs)


_HANDLERS: dict[str, Callable[[Deployment], float | None]] = {
    State.QUEUED: _step_queued,
    State.BUILDING: _step_building,
    State.STARTING: _step_starting,
    State.VERIFYING: _step_verifying,
    State.SWITCHING: _step_switching,
}


def rollout_promote(*, deployment: Deployment) -> None:
    """End the current step's wait (or hold) now; the caller enqueues the next step."""
    _save_progress(deployment, Progress.promote)
