"""The gates at work: what the engine and the watch window ask at each step.

- `gate_during_rollout`: while a canary step waits or holds, check every `interval`; when
  the step's time is up, let the rollout move on only if the gate's last judged window
  passed (too little traffic: keep waiting).  A person's promote is not overruled.
- `gate_after_switch`: during the watch window, the same checks against the thresholds and
  the stable's figures (from before the switch, as the stable then gets no traffic).
- `gate_cap`: a step's wait, cut to the next check.

The tally lives in the deployment's progress (`Progress.gate`), changed under its row lock.
A failure the rules count enough times is returned to the caller, who rolls back (the
engine fails the rollout, which puts the weights back on the stable revision; the watch
window creates the rollback deployment).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from deployments.errors import TransientError
from deployments.models import Deployment, DeploymentEvent
from deployments.progress import Progress
from deployments.strategies import Action, Next
from deployments.timeline import event_record, progress_change

from .judgement import Figures, Kind, Tally, Verdict, gate_judge, tally_record
from .rules import GateRules
from .sources import gate_source_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateOutcome:
    failed: bool = False  # the gate acts: roll back
    reason: str = ""  # the failing figures, for the failure reason and the timeline
    wait: float | None = None  # come back in this many seconds (None: the gate does not hold)


NO_GATE = GateOutcome()


def _time(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _check(*, deployment: Deployment, runtime, rules: GateRules, stage: str, canary: str,
           stable: str | None, now: datetime) -> tuple[Tally, bool, Verdict | None]:
    """One check if due: measure, judge, count, record.  Returns the tally, whether the gate
    acts, and the verdict (None when no check was due or nothing could be measured)."""
    tally = Tally.from_json(Progress.of(deployment).gate)
    if tally.stage != stage:
        tally.reset(stage)
    checked = _time(tally.checked)
    if checked is not None and (now - checked).total_seconds() < rules.interval:
        return tally, False, None
    revisions = [canary] + ([stable] if stable and stable != canary else [])
    source = gate_source_for(runtime=runtime, project=deployment.project.slug, revisions=revisions)
    verdict: Verdict | None = None
    acts = False
    if source is None:
        verdict = Verdict(Kind.WAIT, "No metrics source can measure this project's traffic "
                                     "(the operator sets SWITCHBACK_GATE_PROMETHEUS_URL): waiting.")
        tally.checked = now.isoformat()
    else:
        since = _time(tally.since)
        try:
            figures, reading = source.measure(revisions=revisions, base=tally.base, since=since or now, now=now)
        except TransientError as exc:
            figures, reading = None, None
            verdict = Verdict(Kind.WAIT, f"{source.label} could not be read: {exc.message}")
        tally.checked = now.isoformat()
        if figures is not None and since is None:
            tally.since, tally.base = now.isoformat(), reading  # the first reading opens the window
        elif figures is not None:
            ref = Figures(**tally.stable_reference) if tally.stable_reference else None
            stable_figures = figures.get(stable) if stable and stable != canary else None
            verdict = gate_judge(rules=rules, canary=figures[canary], stable=stable_figures,
                                 stable_reference=ref)
            if verdict.kind != Kind.WAIT:  # judged: the next window starts now
                tally.since, tally.base = now.isoformat(), reading
                if stable_figures is not None and stable_figures.requests >= rules.min_requests:
                    tally.stable_reference = {k: v for k, v in stable_figures.__dict__.items()}
            acts = tally_record(tally=tally, verdict=verdict, rules=rules)
    if verdict is not None and (verdict.kind == Kind.FAIL or verdict.kind != tally.last):
        suffix = ""
        if verdict.kind == Kind.FAIL:
            suffix = ("; rolling back." if acts else
                      f" ({tally.failures} of {rules.failures} failed checks in a row before rolling back.)")
        title = {Kind.PASS: "Gate passed", Kind.FAIL: "Gate failed", Kind.WAIT: "Gate waiting"}[verdict.kind]
        event_record(deployment=deployment, kind=DeploymentEvent.Kind.GATE,
                     message=f"{title}: {verdict.message}{suffix}",
                     data={"gate": verdict.kind.value, "stage": stage, "failures": tally.failures, **verdict.data})
        tally.last = verdict.kind.value
    saved = tally.to_json()
    progress_change(deployment=deployment, change=lambda p: setattr(p, "gate", saved))
    return tally, acts, verdict


def _next_check(rules: GateRules, tally: Tally, now: datetime) -> float:
    checked = _time(tally.checked)
    if checked is None:
        return 0.0
    return max(0.05, rules.interval - (now - checked).total_seconds())


def gate_during_rollout(*, deployment: Deployment, runtime, step: Next, stable: str | None,
                        now: datetime) -> GateOutcome:
    rules = GateRules.of(deployment)
    progress = Progress.of(deployment)
    applied = progress.applied_step
    if not rules.enabled or applied is None or stable is None:
        return NO_GATE
    if step.action == Action.APPLY and step.index <= applied:
        return NO_GATE
    if step.action not in (Action.WAIT, Action.HOLD) and progress.promoted_step == applied:
        return NO_GATE  # a person promoted this step: their call
    tally, acts, verdict = _check(deployment=deployment, runtime=runtime, rules=rules, stage=f"step:{applied}",
                                  canary=deployment.revision, stable=stable, now=now)
    if acts and verdict is not None:
        return GateOutcome(failed=True, reason=f"Gate failed: {verdict.message}")
    due = _next_check(rules, tally, now)
    if step.action == Action.WAIT:
        return GateOutcome(wait=min(step.seconds or 0.0, due) if step.seconds else due)
    if step.action == Action.HOLD:
        return GateOutcome(wait=due)
    # The step's time is up: it moves on only on a judged pass with no failure pending.
    if tally.passed and tally.failures == 0:
        return NO_GATE
    return GateOutcome(wait=due)


def gate_after_switch(*, deployment: Deployment, runtime, previous: str | None, now: datetime) -> GateOutcome:
    rules = GateRules.of(deployment)
    if not rules.enabled:
        return NO_GATE
    tally, acts, verdict = _check(deployment=deployment, runtime=runtime, rules=rules, stage="watch",
                                  canary=deployment.revision, stable=previous, now=now)
    if acts and verdict is not None:
        return GateOutcome(failed=True, reason=f"Gate failed in the watch window: {verdict.message}")
    return GateOutcome(wait=_next_check(rules, tally, now))


def gate_cap(*, deployment: Deployment, delay: float | None) -> float | None:
    """A just-applied step's wait (None: held): with gates on, come straight back, so the
    gate's first reading opens the step's window as its weights take effect."""
    if not GateRules.of(deployment).enabled:
        return delay
    if delay is None and not Deployment.objects.filter(pk=deployment.pk, state="switching").exists():
        return None  # the step was not applied: someone else owns the traffic now
    return 0.0
