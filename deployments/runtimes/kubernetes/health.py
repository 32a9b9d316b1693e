"""Reading a revision's health from its Deployment and Pods (pure functions).

Kubernetes does not say "this will never work"; these are the states that, in practice,
do not fix themselves without a new deploy, so we fail fast on them:
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-state-waiting
"""

from __future__ import annotations

import re

from ..base import HealthState, RevisionHealth

PULL_BACKOFF = {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
# An ErrImagePull saying the image is not there (or not ours) will not get better.
PULL_FATAL = re.compile(r"not found|manifest unknown|unauthorized|denied|invalid reference", re.IGNORECASE)
CANNOT_START = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def _condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})


def pod_failure(pod: dict) -> str:
    """Why this pod will not become ready on its own, or "" if it may still."""
    sched = _condition(pod, "PodScheduled")
    if sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
        return f"pods cannot be scheduled: {sched.get('message') or 'no node fits'}"
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        if reason in PULL_BACKOFF or (reason == "ErrImagePull" and PULL_FATAL.search(message)):
            return f"image {cs.get('image')} cannot be pulled ({reason}): {message}".rstrip(": ")
        if reason == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            code = f", last exit code {last['exitCode']}" if "exitCode" in last else ""
            return (
                f"container {cs.get('name')} keeps crashing (CrashLoopBackOff, "
                f"{cs.get('restartCount', 0)} restarts{code})"
            )
        if reason in CANNOT_START:
            return f"container {cs.get('name')} cannot start ({reason}): {message}".rstrip(": ")
    return ""


def pods_ready(pods: list[dict]) -> int:
    return sum(
        1
        for p in pods
        if _condition(p, "Ready").get("status") == "True" and not (p.get("metadata") or {}).get("deletionTimestamp")
    )


def assess(
    project: str, revision: str, deployment: dict | None, pods: list[dict], probe_failure: str = ""
) -> RevisionHealth:
    """The revision's health: FAILED with a reason a person can act on, READY when every
    wanted replica is ready, STARTING otherwise."""
    if deployment is None:
        return RevisionHealth(HealthState.FAILED, message=f"{project} r{revision} does not exist")
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    want, ready = spec.get("replicas", 1), status.get("readyReplicas") or 0
    if want == 0:
        return RevisionHealth(HealthState.STARTING, 0, 0, "scaled to zero")
    for pod in pods:
        if reason := pod_failure(pod):
            return RevisionHealth(HealthState.FAILED, ready, want, reason)
    progressing = _condition(deployment, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        why = f"; {probe_failure}" if probe_failure else ""
        return RevisionHealth(
            HealthState.FAILED,
            ready,
            want,
            (f"not ready within {spec.get('progressDeadlineSeconds', 600)}s ({ready}/{want} replicas ready){why}"),
        )
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
    if current and ready >= want and (status.get("updatedReplicas") or 0) >= want:
        return RevisionHealth(HealthState.READY, ready, want, f"{ready}/{want} replicas ready")
    return RevisionHealth(HealthState.STARTING, ready, want, f"{ready}/{want} replicas ready")


def probe_failure(events: list[dict], pod_names: set[str]) -> str:
    """The latest probe failure the kubelet reported for these pods, e.g.
    'Readiness probe failed: HTTP probe failed with statuscode: 503'."""
    mine = [
        e for e in events if e.get("reason") == "Unhealthy" and (e.get("involvedObject") or {}).get("name") in pod_names
    ]
    mine.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return mine[-1].get("message", "") if mine else ""
