"""The fake API server: an in-memory store, the HTTP routes, watch, and fault injection.

Behaviour follows the API conventions closely enough for the official client (which
validates bodies) and kubectl:
https://kubernetes.io/docs/reference/using-api/api-concepts/
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import yaml

from . import patching, resources
from .controller import Controller
from .resources import BY_PATH, Resource, status
from .selectors import field_match, label_match

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, **details):
        super().__init__(message)
        self.body = status(code, reason, message, **details)
        self.code = code


@dataclass
class Fault:
    pattern: re.Pattern
    code: int
    times: int
    method: str | None = None
    delay: float = 0.0


class FakeKubeAPI:
    """Start with ``FakeKubeAPI().start()``; ``url`` is the server to give a client."""

    def __init__(self, *, ready_delay: float = 0.05, job_duration: float = 0.1):
        self.lock = threading.Condition(threading.RLock())
        self.objects: dict[tuple, dict] = {}  # (plural, namespace, name) -> object
        self.appliers: dict[tuple, dict[str, set]] = {}  # key -> apply manager -> paths
        self.rv = 100
        self.events: list[tuple[int, str, str, dict]] = []  # (rv, plural, type, object)
        self.compacted_rv = 0
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.authorizations: set[str] = set()  # Authorization headers seen (the fake accepts any)
        self.controller = Controller(self, ready_delay=ready_delay, job_duration=job_duration)
        self._http: ThreadingHTTPServer | None = None

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> FakeKubeAPI:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.api = self
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        if self._http:
            self._http.shutdown()
            self._http.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- test knobs ----------------------------------------------------------------
    def behave(self, name_or_image: str, mode: str) -> None:
        """Make pods of a Deployment/Job (by its name, or by image) behave: ready,
        never_ready, crashloop, image_pull, unschedulable; jobs: succeed, fail."""
        self.controller.behaviors[name_or_image] = mode

    def fail_next(
        self,
        path_regex: str,
        code: int,
        *,
        times: int = 1,
        method: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next ``times`` requests whose path and query match answer ``code`` (410 on a watch
        arrives as an ERROR event, as the real server sends it); delay makes them slow."""
        self.faults.append(Fault(re.compile(path_regex), code, times, method, delay))

    def slow_next(self, path_regex: str, seconds: float, *, times: int = 1) -> None:
        """The next matching requests are answered only after ``seconds`` (a slow watch)."""
        self.faults.append(Fault(re.compile(path_regex), 0, times, None, seconds))

    def compact(self) -> None:
        """Forget watch history: any watch from an older resourceVersion gets 410 Gone."""
        with self.lock:
            self.compacted_rv = self.rv
            self.events.clear()

    def get(self, plural: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            obj = self.objects.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, plural: str, namespace: str | None = None, selector: str = "") -> list[dict]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (p, ns, _), o in sorted(self.objects.items())
                if p == plural
                and namespace in (None, ns)
                and label_match(selector, o["metadata"].get("labels") or {})
            ]

    # --- store -------------------------------------------------------------------
    def commit(self, res: Resource, obj: dict, old: dict | None, *, manager: str = "") -> dict:
        """Persist a write: resourceVersion, generation, ownership, watch event."""
        meta = obj["metadata"]
        key = (res.plural, meta["namespace"], meta["name"])
        with self.lock:
            if old is not None:
                meta["generation"] = old["metadata"].get("generation", 1) + (
                    old.get("spec") != obj.get("spec")
                )
                if manager != "@apply":  # an update takes over the fields it changes
                    before, after = patching.field_paths(old), patching.field_paths(obj)
                    changed = {
                        p for p in before.keys() | after.keys() if before.get(p) != after.get(p)
                    }
                    for paths in self.appliers.get(key, {}).values():
                        paths -= changed
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            meta["managedFields"] = [
                {
                    "manager": m,
                    "operation": "Apply",
                    "apiVersion": res.api_version,
                    "time": resources.now(),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {},
                }
                for m in sorted(self.appliers.get(key, {}))
            ]
            self.objects[key] = obj
            self.events.append(
                (self.rv, res.plural, "MODIFIED" if old else "ADDED", copy.deepcopy(obj))
            )
            self.lock.notify_all()
            return copy.deepcopy(obj)

    def create(self, res: Resource, ns: str, obj: dict, *, manager: str = "") -> dict:
        name = (obj.get("metadata") or {}).get("name", "")
        if not name and (obj.get("metadata") or {}).get("generateName"):
            name = obj["metadata"]["generateName"] + format(self.rv, "x")[-5:]
            obj["metadata"]["name"] = name
        if not NAME_RE.match(name or "") or len(name) > 253:
            raise ApiError(
                422,
                "Invalid",
                f'{res.kind} "{name}" is invalid: metadata.name: '
                "Invalid value: a lowercase RFC 1123 subdomain must consist of lower "
                "case alphanumeric characters, '-' or '.'",
                kind=res.kind,
                name=name,
            )
        with self.lock:
            if (res.plural, ns, name) in self.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{res.plural} "{name}" already exists',
                    kind=res.plural,
                    name=name,
                    group=res.group,
                )
            obj = copy.deepcopy(obj)
            resources.fill_defaults(res, obj, ns)
            _validate(res, obj)
            return self.commit(res, obj, None, manager=manager)

    def read(self, res: Resource, ns: str, name: str) -> dict:
        obj = self.objects.get((res.plural, ns, name))
        if obj is None:
            raise ApiError(
                404,
                "NotFound",
                f'{res.plural} "{name}" not found',
                kind=res.plural,
                name=name,
                group=res.group,
            )
        return copy.deepcopy(obj)

    def update(
        self,
        res: Resource,
        ns: str,
        name: str,
        new: dict,
        *,
        sub: str = "",
        manager: str = "",
        check_rv: bool = True,
    ) -> dict:
        with self.lock:
            old = self.read(res, ns, name)
            want_rv = (new.get("metadata") or {}).get("resourceVersion")
            if check_rv and want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {res.plural} "
                    f'"{name}": the object has been modified; please apply your changes'
                    " to the latest version and try again",
                    kind=res.plural,
                    name=name,
                )
            obj = copy.deepcopy(old)
            if sub == "status":
                obj["status"] = new.get("status", {})
            else:
                obj.update({k: v for k, v in new.items() if k not in ("metadata", "status")})
                for k in ("labels", "annotations", "ownerReferences", "finalizers"):
                    if k in (new.get("metadata") or {}):
                        obj["metadata"][k] = new["metadata"][k]
                    else:
                        obj["metadata"].pop(k, None)
                if "status" not in res.subresources and "status" in new:
                    obj["status"] = new["status"]
                if res.kind == "Secret" and "stringData" in obj:
                    resources.fill_defaults(res, obj, ns)
                    obj["metadata"].update(
                        {k: old["metadata"][k] for k in ("uid", "creationTimestamp")}
                    )
            _validate(res, obj)
            if obj == old:
                return old
            return self.commit(res, obj, old, manager=manager)

    def apply(
        self, res: Resource, ns: str, name: str, cfg: dict, *, manager: str, force: bool
    ) -> dict:
        """Server-side apply: merge, take ownership, drop fields this manager let go of."""
        key = (res.plural, ns, name)
        with self.lock:
            old = self.objects.get(key)
            owners = self.appliers.setdefault(key, {})
            applied = patching.field_paths(cfg)
            if old is not None:
                current = patching.field_paths(old)
                conflicts = sorted(
                    f".{'.'.join(p)}"
                    for m, paths in owners.items()
                    if m != manager
                    for p in paths & applied.keys()
                    if current.get(p) != applied[p]
                )
                if conflicts and not force:
                    raise ApiError(
                        409,
                        "Conflict",
                        f"Apply failed with {len(conflicts)} conflict:"
                        f" conflicts with another manager: {', '.join(conflicts)}",
                        kind=res.plural,
                        name=name,
                    )
            for m in owners:
                if m != manager:
                    owners[m] -= applied.keys()
            released = owners.get(manager, set()) - applied.keys()
            owners[manager] = set(applied)
            if old is None:
                return self.create(res, ns, cfg, manager="@apply")
            obj = patching.merge_patch(old, cfg, strategic=True)
            for path in released:
                if not any(path in paths for paths in owners.values()):
                    patching.remove_path(obj, path)
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if res.kind == "Secret" and "stringData" in obj:
                resources.fill_defaults(res, obj, ns)
                obj["metadata"].update(
                    {k: old["metadata"][k] for k in ("uid", "creationTimestamp", "generation")}
                )
            if "status" in res.subresources:
                obj["status"] = old.get("status", {})
            _validate(res, obj)
            return self.commit(res, obj, old, manager="@apply") if obj != old else old

    def delete(self, res: Resource, ns: str, name: str, *, cascade: bool = True) -> dict:
        with self.lock:
            obj = self.read(res, ns, name)
            del self.objects[(res.plural, ns, name)]
            self.appliers.pop((res.plural, ns, name), None)
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.events.append((self.rv, res.plural, "DELETED", copy.deepcopy(obj)))
            if cascade:  # the garbage collector removes dependents (owned pods)
                uid = obj["metadata"]["uid"]
                for (p, pns, pname), dep in list(self.objects.items()):
                    refs = dep["metadata"].get("ownerReferences") or []
                    if p == "pods" and pns == ns and any(r.get("uid") == uid for r in refs):
                        self.delete(BY_PATH[("", "v1", "pods")], pns, pname)
            self.lock.notify_all()
            return obj

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and f.pattern.search(path) and f.method in (None, method):
                    f.times -= 1
                    return f
        return None


def _validate(res: Resource, obj: dict) -> None:
    """The few server-side checks that catch real mistakes in our manifests."""
    name = obj["metadata"]["name"]
    if res.kind == "Deployment":
        spec = obj["spec"]
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            raise ApiError(
                422,
                "Invalid",
                f'Deployment.apps "{name}" is invalid: '
                "spec.template.metadata.labels: Invalid value: `selector` does not "
                "match template `labels`",
                kind="Deployment",
                name=name,
                group="apps",
            )
        if not (spec.get("template") or {}).get("spec", {}).get("containers"):
            raise ApiError(
                422,
                "Invalid",
                f'Deployment.apps "{name}" is invalid: '
                "spec.template.spec.containers: Required value",
                kind="Deployment",
                name=name,
                group="apps",
            )
    for v in (obj["metadata"].get("labels") or {}).values():
        if not isinstance(v, str) or len(v) > 63:
            raise ApiError(
                422,
                "Invalid",
                f'{res.kind} "{name}" is invalid: metadata.labels: Invalid value: {v!r}',
                kind=res.kind,
                name=name,
            )


def _scale(obj: dict) -> dict:
    meta = obj["metadata"]
    sel = ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"]["matchLabels"].items())
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        },
        "spec": {"replicas": obj["spec"].get("replicas", 1)},
        "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": sel},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes, keep-alive: avoid 40ms delayed ACKs
    server_version = "switchback-fake-kube/1"

    def log_message(self, *args):  # keep test output quiet
        pass

    @property
    def api(self) -> FakeKubeAPI:
        return self.server.api

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _send(self, code: int, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ctype = self.headers.get("Content-Type", "application/json").split(";")[0]
        return ctype, (
            yaml.safe_load(raw) if raw and "yaml" in ctype else json.loads(raw) if raw else None
        )

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.api.requests.append((method, self.path))
        if self.headers.get("Authorization"):
            self.api.authorizations.add(self.headers["Authorization"])
        try:
            body = self._body() if method in ("POST", "PUT", "PATCH") else (None, None)
            is_watch = query.get("watch") in ("true", "1")
            if fault := self.api.take_fault(method, self.path):
                time.sleep(fault.delay)
                if fault.code == 410 and is_watch:
                    return self._watch_gone()
                if fault.code >= 400:
                    raise ApiError(
                        fault.code,
                        {409: "Conflict", 410: "Gone"}.get(fault.code, "InternalError"),
                        f"injected fault {fault.code}",
                    )
            self._route(method, url.path, query, *body, is_watch=is_watch)
        except ApiError as e:
            self._send(e.code, e.body)
        except (patching.PatchError, ValueError, KeyError, TypeError) as e:
            self._send(400, status(400, "BadRequest", f"bad request: {e}"))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, method, path, query, ctype, body, *, is_watch):
        parts = [p for p in path.split("/") if p]
        if path in ("/api", "/api/"):
            return self._send(200, resources.api_versions())
        if path in ("/apis", "/apis/"):
            return self._send(200, resources.api_group_list())
        if path == "/version":
            return self._send(200, resources.version_info())
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            doc = resources.resource_list(group, version)
            if doc is None:
                raise ApiError(404, "NotFound", f"no API group version {group}/{version}")
            return self._send(200, doc)
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        res = BY_PATH.get((group, version, rest[0]))
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name, sub = (rest[1:2] or [None])[0], (rest[2:3] or [""])[0]
        api = self.api
        if name is None:
            if method == "GET" and is_watch:
                return self._watch(res, ns, query)
            if method == "GET":
                return self._send(200, self._list(res, ns, query))
            if method == "POST":
                return self._send(
                    201, api.create(res, ns, body, manager=query.get("fieldManager", ""))
                )
        elif method == "GET":
            with api.lock:
                obj = api.read(res, ns, name)
            if sub == "log":
                return self._send(200, self._logs(obj, query), "text/plain")
            return self._send(200, _scale(obj) if sub == "scale" else obj)
        elif method == "DELETE":
            opts = {}
            if self.headers.get("Content-Length"):
                opts = self._body()[1] or {}
            policy = query.get("propagationPolicy") or opts.get("propagationPolicy")
            return self._send(200, api.delete(res, ns, name, cascade=policy != "Orphan"))
        elif method in ("PUT", "PATCH"):
            return self._send(*self._write(res, ns, name, sub, method, ctype, body, query))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _write(self, res, ns, name, sub, method, ctype, body, query):
        api, manager = self.api, query.get("fieldManager", "")
        if ctype == "application/apply-patch+yaml":
            if not manager:
                raise ApiError(400, "BadRequest", "fieldManager is required for apply")
            if sub:
                raise ApiError(400, "BadRequest", "apply to subresources is not supported here")
            with api.lock:
                existed = (res.plural, ns, name) in api.objects
                obj = api.apply(
                    res, ns, name, body, manager=manager, force=query.get("force") == "true"
                )
            return (200 if existed else 201), obj
        with api.lock:
            current = api.read(res, ns, name)
            view = _scale(current) if sub == "scale" else current
            if method == "PUT":
                new = body
            elif ctype == "application/json-patch+json":
                new = patching.json_patch(view, body)
            else:
                strategic = ctype == "application/strategic-merge-patch+json"
                if strategic and res.group == "gateway.networking.k8s.io":
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources",
                    )
                new = patching.merge_patch(view, body, strategic=strategic)
            if sub == "scale":
                if new.get("metadata", {}).get("resourceVersion") not in (
                    None,
                    current["metadata"]["resourceVersion"],
                ):
                    raise ApiError(409, "Conflict", "the object has been modified")
                target = copy.deepcopy(current)
                target["spec"]["replicas"] = int(new["spec"]["replicas"])
                target["metadata"].pop("resourceVersion")
                return 200, _scale(api.update(res, ns, name, target, manager=manager))
            return 200, api.update(
                res, ns, name, new, sub=sub, manager=manager, check_rv=method == "PUT"
            )

    def _list(self, res, ns, query) -> dict:
        with self.api.lock:
            items = [
                o
                for (p, ons, _), o in sorted(self.api.objects.items())
                if p == res.plural
                and ns in (None, ons)
                and label_match(query.get("labelSelector"), o["metadata"].get("labels") or {})
                and field_match(query.get("fieldSelector"), o)
            ]
            doc = {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self.api.rv)},
                "items": items,
            }
        if "as=Table" in self.headers.get("Accept", ""):
            return _table(res, items)
        return doc

    def _logs(self, pod: dict, query) -> bytes:
        name = pod["metadata"]["name"]
        deadline = time.monotonic() + 10
        while query.get("follow") == "true" and time.monotonic() < deadline:
            phase = (
                (self.api.get("pods", pod["metadata"]["namespace"], name) or {})
                .get("status", {})
                .get("phase")
            )
            if phase not in ("Pending", "Running"):
                break
            time.sleep(0.01)
        return self.api.controller.logs_for(pod).encode()

    # --- watch: newline-delimited JSON events over a chunked response ---------------
    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, event: dict | None) -> None:
        data = (json.dumps(event) + "\n").encode() if event else b""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch_gone(self):
        self._start_stream()
        self._chunk({"type": "ERROR", "object": status(410, "Expired", "too old resource version")})
        self._chunk(None)

    def _watch(self, res, ns, query):
        api = self.api
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        rv = query.get("resourceVersion") or ""

        def wanted(plural, obj):
            return (
                plural == res.plural
                and ns in (None, obj["metadata"]["namespace"])
                and label_match(query.get("labelSelector"), obj["metadata"].get("labels") or {})
                and field_match(query.get("fieldSelector"), obj)
            )

        with api.lock:
            if rv not in ("", "0") and int(rv) < api.compacted_rv:
                return self._watch_gone()
            start = api.rv if rv in ("", "0") else int(rv)
            pending = (
                []
                if rv not in ("", "0")
                else [{"type": "ADDED", "object": o} for o in self._list(res, ns, query)["items"]]
            )
        self._start_stream()
        while True:
            for event in pending:
                self._chunk(event)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with api.lock:
                api.lock.wait_for(lambda s=start: api.rv > s, timeout=min(remaining, 0.5))
                pending = [
                    {"type": t, "object": o}
                    for (erv, p, t, o) in api.events
                    if erv > start and wanted(p, o)
                ]
                start = api.rv
        self._chunk(None)


def _table(res: Resource, items: list[dict]) -> dict:
    """The server-side printing kubectl asks for (Accept: as=Table)."""
    cols = [
        {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
        {"name": "Age", "type": "string", "description": "", "priority": 0},
    ]
    rows = []
    for o in items:
        born = datetime.strptime(o["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        age = int((datetime.now(UTC) - born.replace(tzinfo=UTC)).total_seconds())
        cells = [o["metadata"]["name"], f"{age}s" if age < 120 else f"{age // 60}m"]
        if res.kind == "Deployment":
            st = o.get("status", {})
            cells.insert(1, f"{st.get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}")
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            }
        )
    if res.kind == "Deployment":
        cols.insert(1, {"name": "Ready", "type": "string", "description": "", "priority": 0})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": cols,
        "rows": rows,
    }
