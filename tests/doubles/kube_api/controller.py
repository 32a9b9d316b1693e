"""A simulated control plane: the Deployment and Job controllers, a scheduler and kubelet.

Deployments get Pods directly (no ReplicaSets) and the status fields a client reads:
https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#deployment-status
Pod behaviour is chosen per Deployment/Job name or image with ``FakeKubeAPI.behave``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid

from .resources import BY_PATH, now

POD, DEPLOY, JOB = (
    BY_PATH[("", "v1", "pods")],
    BY_PATH[("apps", "v1", "deployments")],
    BY_PATH[("batch", "v1", "jobs")],
)
ROUTE, EVENT = (
    BY_PATH[("gateway.networking.k8s.io", "v1", "httproutes")],
    BY_PATH[("", "v1", "events")],
)


def _cond(type_, status, reason="", message="", **extra) -> dict:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now(),
        **extra,
    }


def _same_times(new: list, old: list) -> list:
    """Keep a condition's timestamps while its status and reason are unchanged."""
    by_type = {c["type"]: c for c in old or []}
    for c in new:
        prev = by_type.get(c["type"])
        if prev and (prev["status"], prev.get("reason")) == (c["status"], c.get("reason")):
            for k in ("lastTransitionTime", "lastUpdateTime", "lastProbeTime"):
                if k in prev:
                    c[k] = prev[k]
    return new


class Controller:
    def __init__(self, api, *, ready_delay: float, job_duration: float):
        self.api = api
        self.ready_delay = ready_delay
        self.job_duration = job_duration
        self.behaviors: dict[str, str] = {}
        self.logs: dict[str, str] = {}  # owner name or pod name -> log text
        self.termination_messages: dict[str, str] = {}  # owner name -> message on success
        self._born: dict[str, float] = {}
        self._progress: dict[str, tuple[int, int, float]] = {}  # uid -> (gen, ready, since)
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(0.01):
            with self.api.lock:
                for obj in self.api.list("deployments"):
                    self._deployment(obj)
                for obj in self.api.list("jobs"):
                    self._job(obj)
                for obj in self.api.list("httproutes"):
                    self._route(obj)

    def _mode(self, owner: str, pod_spec: dict, default: str) -> str:
        images = [c.get("image") for c in pod_spec.get("containers", [])]
        return next((self.behaviors[k] for k in (owner, *images) if k in self.behaviors), default)

    def logs_for(self, pod: dict) -> str:
        owner = (pod["metadata"].get("ownerReferences") or [{}])[0].get("name", "")
        return self.logs.get(pod["metadata"]["name"], self.logs.get(owner, f"{owner} says hi\n"))

    # --- Deployment controller --------------------------------------------------
    def _deployment(self, d: dict) -> None:
        meta, spec = d["metadata"], d["spec"]
        ns, want = meta["namespace"], spec.get("replicas", 1)
        tmpl = spec["template"]
        tmpl_hash = hashlib.sha256(json.dumps(tmpl, sort_keys=True).encode()).hexdigest()[:10]
        pods = self._owned(d)
        for p in pods:  # a new template replaces every old pod (rollouts are ours to do)
            if p["metadata"]["labels"].get("pod-template-hash") != tmpl_hash:
                self.api.delete(POD, ns, p["metadata"]["name"])
        pods = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == tmpl_hash]
        for p in pods[want:]:
            self.api.delete(POD, ns, p["metadata"]["name"])
        for _ in range(want - len(pods)):
            pods.append(self._new_pod(d, tmpl, {"pod-template-hash": tmpl_hash}))
        pods = pods[:want]
        mode = self._mode(meta["name"], tmpl["spec"], "ready")
        for p in pods:
            self._kubelet(p, mode)
        pods = self._owned(d)
        ready = sum(1 for p in pods if _is_ready(p))
        gen, prev = meta["generation"], self._progress.get(meta["uid"])
        if not prev or prev[0] != gen or prev[1] != ready:
            prev = self._progress[meta["uid"]] = (gen, ready, time.monotonic())
        stuck = ready < want and time.monotonic() - prev[2] > spec.get(
            "progressDeadlineSeconds", 600
        )
        old = d.get("status") or {}
        progressing = (
            _cond(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{meta["name"]}-{tmpl_hash}" has timed out progressing.',
            )
            if stuck
            else _cond(
                "Progressing",
                "True",
                "NewReplicaSetAvailable" if ready >= want else "ReplicaSetUpdated",
                f'ReplicaSet "{meta["name"]}-{tmpl_hash}" is progressing.',
            )
        )
        available = _cond(
            "Available",
            "True" if ready >= want else "False",
            "MinimumReplicasAvailable" if ready >= want else "MinimumReplicasUnavailable",
            "Deployment has minimum availability.",
        )
        for c in (progressing, available):
            c["lastUpdateTime"] = c["lastTransitionTime"]
        status = {
            "observedGeneration": gen,
            "replicas": len(pods),
            "updatedReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(want - ready, 0),
            "conditions": _same_times([available, progressing], old.get("conditions")),
        }
        status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "conditions")}
        if status != old:
            self.api.update(
                DEPLOY, ns, meta["name"], {"status": status}, sub="status", check_rv=False
            )

    def _owned(self, owner: dict) -> list[dict]:
        uid = owner["metadata"]["uid"]
        return [
            p
            for p in self.api.list("pods", owner["metadata"]["namespace"])
            if any(r["uid"] == uid for r in p["metadata"].get("ownerReferences") or [])
        ]

    def _new_pod(self, owner: dict, tmpl: dict, extra_labels: dict) -> dict:
        meta = owner["metadata"]
        suffix = uuid.uuid4().hex[:5]
        name = f"{meta['name']}-{extra_labels.get('pod-template-hash', '')}-{suffix}".replace(
            "--", "-"
        )
        pod = {
            "metadata": {
                "name": name,
                "labels": {**tmpl["metadata"].get("labels", {}), **extra_labels},
                "ownerReferences": [
                    {
                        "apiVersion": owner["apiVersion"],
                        "kind": owner["kind"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": json.loads(json.dumps(tmpl["spec"])),
        }
        created = self.api.create(POD, meta["namespace"], pod)
        self._born[created["metadata"]["uid"]] = time.monotonic()
        return created

    # --- scheduler + kubelet ----------------------------------------------------
    def _kubelet(self, pod: dict, mode: str, *, finish: str | None = None) -> None:
        meta, old = pod["metadata"], pod.get("status") or {}
        age = time.monotonic() - self._born.get(meta["uid"], 0)
        started = age >= self.ready_delay
        scheduled = mode != "unschedulable"
        phase, ready, restarts, last = "Pending", False, 0, {}
        if not scheduled:
            state = None
        elif mode == "image_pull":
            reason = "ErrImagePull" if age < 3 * self.ready_delay else "ImagePullBackOff"
            image = pod["spec"]["containers"][0]["image"]
            state = {
                "waiting": {
                    "reason": reason,
                    "message": f'Back-off pulling image "{image}"'
                    if reason == "ImagePullBackOff"
                    else f"failed to pull image "
                    f'"{image}": rpc error: code = NotFound desc = manifest unknown',
                }
            }
        elif not started:
            state = {"waiting": {"reason": "ContainerCreating"}}
        elif finish:
            phase = finish
            term = {
                "exitCode": 0 if finish == "Succeeded" else 1,
                "reason": "Completed" if finish == "Succeeded" else "Error",
                "startedAt": now(),
                "finishedAt": now(),
            }
            owner = (meta.get("ownerReferences") or [{}])[0].get("name", "")
            if finish == "Succeeded" and owner in self.termination_messages:
                term["message"] = self.termination_messages[owner]
            state = {"terminated": term}
        elif mode == "crashloop":
            phase, restarts = "Running", 1 + int(age / max(self.ready_delay, 0.01)) % 5
            state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 10s restarting failed container pod={meta['name']}",
                }
            }
            last = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": now(),
                    "finishedAt": now(),
                }
            }
        else:
            phase, ready = "Running", mode == "ready"
            state = {"running": {"startedAt": old.get("startTime") or now()}}
            if mode == "never_ready" and not old.get("phase") == "Running":
                self._event(
                    pod,
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                )
        sched = (
            _cond("PodScheduled", "True")
            if scheduled
            else _cond(
                "PodScheduled",
                "False",
                "Unschedulable",
                "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available.",
            )
        )
        conds = [sched]
        if scheduled:
            why = "" if ready else "ContainersNotReady"
            conds += [
                _cond("Initialized", "True"),
                _cond("ContainersReady", str(ready), why),
                _cond("Ready", str(ready), why),
            ]
        status = {
            "phase": phase,
            "conditions": _same_times(conds, old.get("conditions")),
            "qosClass": "Burstable",
        }
        if scheduled:
            status.update(
                hostIP="10.0.0.10",
                podIP=f"10.244.0.{int(meta['uid'][:2], 16)}",
                startTime=old.get("startTime") or now(),
            )
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "ready": ready,
                    "restartCount": restarts,
                    "started": "running" in state,
                    "state": state,
                    "lastState": last,
                    "imageID": f"docker-pullable://{c['image']}"
                    if started and mode != "image_pull"
                    else "",
                }
                for c in pod["spec"]["containers"]
            ]
        if old.get("containerStatuses") and "terminated" in (
            old["containerStatuses"][0].get("state") or {}
        ):
            return  # finished pods do not change again
        if status != old:
            self.api.update(
                POD,
                meta["namespace"],
                meta["name"],
                {"status": status},
                sub="status",
                check_rv=False,
            )

    def _event(self, pod: dict, reason: str, message: str) -> None:
        meta = pod["metadata"]
        self.api.create(
            EVENT,
            meta["namespace"],
            {
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}"},
                "involvedObject": {
                    "kind": "Pod",
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                    "apiVersion": "v1",
                },
                "reason": reason,
                "message": message,
                "type": "Warning",
                "count": 1,
                "firstTimestamp": now(),
                "lastTimestamp": now(),
                "source": {"component": "kubelet", "host": "fake-node"},
            },
        )

    # --- Job controller -----------------------------------------------------------
    def _job(self, job: dict) -> None:
        meta, old = job["metadata"], job.get("status") or {}
        if any(c["type"] in ("Complete", "Failed") for c in old.get("conditions", [])):
            return
        tmpl = job["spec"]["template"]
        pods = self._owned(job)
        if not pods:
            labels = {
                "batch.kubernetes.io/job-name": meta["name"],
                "job-name": meta["name"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
                "controller-uid": meta["uid"],
            }
            tmpl = {
                **tmpl,
                "metadata": {
                    **tmpl.get("metadata", {}),
                    "labels": {**(tmpl.get("metadata") or {}).get("labels", {}), **labels},
                },
            }
            pods = [self._new_pod(job, tmpl, {})]
        pod = pods[0]
        age = time.monotonic() - self._born.get(pod["metadata"]["uid"], 0)
        mode = self._mode(meta["name"], tmpl["spec"], "succeed")
        done = age >= self.ready_delay + self.job_duration
        finish = ("Failed" if mode == "fail" else "Succeeded") if done else None
        self._kubelet(pod, "ready" if mode in ("succeed", "fail") else mode, finish=finish)
        status = {"startTime": old.get("startTime") or now(), "active": 0 if done else 1}
        if done:
            ok = mode != "fail"
            status.update({"succeeded" if ok else "failed": 1, "active": 0})
            status["conditions"] = [
                _cond("Complete", "True")
                if ok
                else _cond(
                    "Failed",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            ]
            if ok:
                status["completionTime"] = now()
        status = {k: v for k, v in status.items() if v}
        if status != old:
            self.api.update(
                JOB,
                meta["namespace"],
                meta["name"],
                {"status": status},
                sub="status",
                check_rv=False,
            )

    # --- a Gateway controller that accepts every route ---------------------------------
    def _route(self, route: dict) -> None:
        gen, old = route["metadata"]["generation"], route.get("status") or {}
        parents = [
            {
                "parentRef": ref,
                "controllerName": "switchback.dev/fake-gateway",
                "conditions": [
                    _cond("Accepted", "True", "Accepted", "accepted", observedGeneration=gen),
                    _cond(
                        "ResolvedRefs", "True", "ResolvedRefs", "resolved", observedGeneration=gen
                    ),
                ],
            }
            for ref in route["spec"].get("parentRefs", [])
        ]
        for p, o in zip(parents, old.get("parents", []), strict=False):
            _same_times(p["conditions"], o.get("conditions"))
        if {"parents": parents} != old:
            meta = route["metadata"]
            self.api.update(
                ROUTE,
                meta["namespace"],
                meta["name"],
                {"status": {"parents": parents}},
                sub="status",
                check_rv=False,
            )


def _is_ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions", [])
    )
