"""What the fake serves: the resource table, discovery documents and object defaults."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = [
    Resource("", "v1", "pods", "Pod", ("po",), ("status", "log")),
    Resource("", "v1", "services", "Service", ("svc",), ("status",)),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "configmaps", "ConfigMap", ("cm",)),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", ("sa",)),
    Resource("", "v1", "events", "Event", ("ev",)),
    Resource("apps", "v1", "deployments", "Deployment", ("deploy",), ("status", "scale")),
    Resource("batch", "v1", "jobs", "Job", (), ("status",)),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", ("ing",), ("status",)),
    Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", (), ("status",)),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
GROUPS = sorted({r.group for r in RESOURCES if r.group})
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_versions() -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group_list() -> dict:
    groups = []
    for g in GROUPS:
        gv = {"groupVersion": f"{g}/v1", "version": "v1"}
        groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str) -> dict | None:
    found = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not found:
        return None
    items = []
    for r in found:
        items.append(
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": True,
                "kind": r.kind,
                "verbs": VERBS,
                "shortNames": list(r.short_names),
            }
        )
        for sub in r.subresources:
            kind = {"scale": "Scale", "log": "Pod"}.get(sub, r.kind)
            sub_item = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": True,
                "kind": kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_item.update(group="autoscaling", version="v1")
            items.append(sub_item)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}


def version_info() -> dict:
    return {
        "major": "1",
        "minor": "30",
        "gitVersion": "v1.30.0-switchback-fake",
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2024-04-17T00:00:00Z",
        "goVersion": "go1.22.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def status(
    code: int, reason: str, message: str, *, kind: str = "", name: str = "", group: str = ""
) -> dict:
    """A metav1.Status body, as the API server returns for every error."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if kind or name:
        body["details"] = {"name": name, "group": group, "kind": kind}
    return body


def fill_defaults(res: Resource, obj: dict, namespace: str) -> None:
    """Give a new object what the API server would (metadata, spec defaults)."""
    meta = obj.setdefault("metadata", {})
    obj["apiVersion"], obj["kind"] = res.api_version, res.kind
    meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
    spec = obj.setdefault("spec", {}) if res.kind not in NO_SPEC else None
    if res.kind == "Secret":
        # stringData is write-only: the server folds it into base64 data.
        data = obj.setdefault("data", {})
        for k, v in (obj.pop("stringData", None) or {}).items():
            data[k] = base64.b64encode(v.encode()).decode()
        obj.setdefault("type", "Opaque")
    elif res.kind == "Deployment":
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
        )
        obj["status"] = {}
    elif res.kind == "Service":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("clusterIP", f"10.96.{len(meta['uid']) % 250}.{int(meta['uid'][:2], 16)}")
        spec["clusterIPs"] = [spec["clusterIP"]]
        for p in spec.get("ports", []):
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif res.kind == "Job":
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        obj["status"] = {}
    elif res.kind == "Ingress":
        obj["status"] = {"loadBalancer": {}}
    elif res.kind == "Pod":
        obj.setdefault("status", {"phase": "Pending"})


NO_SPEC = {"Secret", "ConfigMap", "ServiceAccount", "Event"}
