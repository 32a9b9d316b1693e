"""A thin client over the official ``kubernetes`` client: apply, get, delete, scale, watch.

Objects go in and come out as plain dicts (camelCase, as in manifests).  Errors are
sorted into the two kinds that cross layers: TransientError (5xx, 429, conflicts that
outlive our retries, expired watches, timeouts, refused connections) and PermanentError
(the API rejected the request; its message says why).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from deployments.errors import PermanentError, TransientError

from .manifests import MANAGER

log = logging.getLogger(__name__)

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Kind:
    api: type  # e.g. AppsV1Api; None-like CustomObjectsApi for CRDs
    suffix: str = ""  # method suffix, e.g. "namespaced_deployment"
    crd: tuple[str, str, str] = ("", "", "")  # group, version, plural (custom resources)


KINDS = {
    "Deployment": Kind(k8s.AppsV1Api, "namespaced_deployment"),
    "Service": Kind(k8s.CoreV1Api, "namespaced_service"),
    "Secret": Kind(k8s.CoreV1Api, "namespaced_secret"),
    "ConfigMap": Kind(k8s.CoreV1Api, "namespaced_config_map"),
    "Pod": Kind(k8s.CoreV1Api, "namespaced_pod"),
    "Event": Kind(k8s.CoreV1Api, "namespaced_event"),
    "Job": Kind(k8s.BatchV1Api, "namespaced_job"),
    "Ingress": Kind(k8s.NetworkingV1Api, "namespaced_ingress"),
    "HTTPRoute": Kind(k8s.CustomObjectsApi, crd=("gateway.networking.k8s.io", "v1", "httproutes")),
}


def _json_body(response) -> dict | list | None:
    """The decoded JSON of a raw (urllib3) response, its connection back in the pool."""
    try:
        data = response.data
    finally:
        release = getattr(response, "release_conn", None)
        if release is not None:
            release()
    return json.loads(data) if data else None


class WatchExpired(TransientError):
    """The watch's resourceVersion is too old (410 Gone): list again, then watch."""


def _message(exc: k8s.ApiException) -> str:
    try:
        return json.loads(exc.body or "{}").get("message") or exc.reason or str(exc.status)
    except (ValueError, AttributeError):
        return exc.reason or str(exc.status)


class KubeClient:
    """One namespace on one cluster.

    Connect with exactly one of: ``host`` (tests, a local proxy), ``kubeconfig`` (+
    ``context``), or ``in_cluster=True`` (the ServiceAccount token of the pod we run in).
    """

    def __init__(
        self,
        *,
        namespace: str = "default",
        host: str = "",
        kubeconfig: str = "",
        context: str = "",
        in_cluster: bool = False,
        retries: int = 4,
        backoff: float = 0.5,
        request_timeout: float = 30.0,
    ):
        cfg = k8s.Configuration()
        try:
            if in_cluster:
                k8s_config.load_incluster_config(client_configuration=cfg)
            elif kubeconfig or not host:
                k8s_config.load_kube_config(
                    config_file=kubeconfig or None,
                    context=context or None,
                    client_configuration=cfg,
                )
        except (k8s_config.ConfigException, OSError) as exc:
            raise PermanentError(f"cannot load Kubernetes credentials: {exc}") from exc
        if host:
            cfg.host = host
        cfg.retries = False  # we retry ourselves, with the error kinds above
        self.namespace = namespace
        self.retries = retries
        self.backoff = backoff
        self.request_timeout = request_timeout
        self.api_client = k8s.ApiClient(cfg)
        self._apis: dict[type, object] = {}

    def close(self) -> None:
        self.api_client.close()

    # --- plumbing --------------------------------------------------------------------------
    def _api(self, kind: str):
        spec = KINDS.get(kind)
        if spec is None:
            raise PermanentError(f"Switchback does not manage {kind} objects")
        if spec.api not in self._apis:
            self._apis[spec.api] = spec.api(self.api_client)
        return spec, self._apis[spec.api]

    def _call(self, what: str, fn: Callable, *args, not_found_ok: bool = False, **kwargs):
        """Call the API, retrying transient failures with exponential backoff.

        The answer is the API server's JSON as it came (camelCase, what a manifest says):
        the client's typed models are skipped (`_preload_content=False`).  Building them and
        turning them back into dicts took more time than the request itself, in every
        warm-rollback check and every step of a watch (bench/k8s_rollback.py)."""
        kwargs.setdefault("_request_timeout", self.request_timeout)
        kwargs["_preload_content"] = False
        for attempt in range(self.retries + 1):
            try:
                return _json_body(fn(*args, **kwargs))
            except k8s.ApiException as exc:
                if exc.status == 404 and not_found_ok:
                    return None
                if exc.status in (409, 429) or exc.status >= 500:
                    error = TransientError(f"{what}: {exc.status} {_message(exc)}", code=f"kube_{exc.status}")
                elif exc.status == 410:
                    raise WatchExpired(f"{what}: {_message(exc)}", code="kube_410") from exc
                else:
                    raise PermanentError(
                        f"{what} was rejected by Kubernetes: {_message(exc)}",
                        code=f"kube_{exc.status}",
                    ) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                error = TransientError(f"{what}: cannot reach the Kubernetes API ({exc})", code="kube_unreachable")
            if attempt < self.retries:
                log.info("retrying %s after %s", what, error.message)
                time.sleep(self.backoff * 2**attempt)
        raise error

    def _crd_args(self, spec: Kind) -> tuple:
        group, version, plural = spec.crd
        return group, version, self.namespace, plural

    # --- verbs ------------------------------------------------------------------------------
    def apply(self, obj: dict, *, force: bool = True) -> dict:
        """Server-side apply as field manager "switchback": we own what we set, and a
        field we stop setting is removed.
        https://kubernetes.io/docs/reference/using-api/server-side-apply/"""
        kind, name = obj["kind"], obj["metadata"]["name"]
        spec, api = self._api(kind)
        what = f"apply {kind} {name}"
        opts = {"field_manager": MANAGER, "force": force, "_content_type": APPLY}
        if spec.crd[0]:
            return self._call(what, api.patch_namespaced_custom_object, *self._crd_args(spec), name, obj, **opts)
        return self._call(what, getattr(api, f"patch_{spec.suffix}"), name, self.namespace, obj, **opts)

    def get(self, kind: str, name: str) -> dict | None:
        spec, api = self._api(kind)
        if spec.crd[0]:
            return self._call(
                f"get {kind} {name}",
                api.get_namespaced_custom_object,
                *self._crd_args(spec),
                name,
                not_found_ok=True,
            )
        return self._call(
            f"get {kind} {name}",
            getattr(api, f"read_{spec.suffix}"),
            name,
            self.namespace,
            not_found_ok=True,
        )

    def list(self, kind: str, *, selector: str = "", field_selector: str = "") -> tuple[list, str]:
        """Items and the list's resourceVersion (where a watch should start)."""
        spec, api = self._api(kind)
        opts = {"label_selector": selector or None, "field_selector": field_selector or None}
        if spec.crd[0]:
            out = self._call(f"list {kind}", api.list_namespaced_custom_object, *self._crd_args(spec), **opts)
        else:
            out = self._call(f"list {kind}", getattr(api, f"list_{spec.suffix}"), self.namespace, **opts)
        return out.get("items") or [], (out.get("metadata") or {}).get("resourceVersion", "")

    def delete(self, kind: str, name: str) -> None:
        """Delete with background propagation (pods go too); already gone is fine."""
        spec, api = self._api(kind)
        opts = {"propagation_policy": "Background", "not_found_ok": True}
        if spec.crd[0]:
            self._call(
                f"delete {kind} {name}",
                api.delete_namespaced_custom_object,
                *self._crd_args(spec),
                name,
                **opts,
            )
        else:
            self._call(
                f"delete {kind} {name}",
                getattr(api, f"delete_{spec.suffix}"),
                name,
                self.namespace,
                **opts,
            )

    def patch(self, kind: str, name: str, body, *, content_type: str = MERGE) -> dict | None:
        spec, api = self._api(kind)
        if spec.crd[0]:
            return self._call(
                f"patch {kind} {name}",
                api.patch_namespaced_custom_object,
                *self._crd_args(spec),
                name,
                body,
                _content_type=content_type,
            )
        return self._call(
            f"patch {kind} {name}",
            getattr(api, f"patch_{spec.suffix}"),
            name,
            self.namespace,
            body,
            _content_type=content_type,
        )

    def patch_selector(self, service: str, selector: dict[str, str]) -> dict:
        """Point a Service at other pods: the instant switch.  A JSON patch replaces the
        whole selector (a merge patch would keep stale keys)."""
        ops = [{"op": "replace", "path": "/spec/selector", "value": selector}]
        return self.patch("Service", service, ops, content_type=JSON_PATCH)

    def scale(self, deployment: str, replicas: int) -> None:
        """Set replicas through the /scale subresource (what `kubectl scale` does)."""
        _, api = self._api("Deployment")
        self._call(
            f"scale Deployment {deployment} to {replicas}",
            api.patch_namespaced_deployment_scale,
            deployment,
            self.namespace,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE,
        )

    def pod_log(self, pod: str, *, follow: bool = False) -> Iterator[str]:
        _, api = self._api("Pod")
        try:
            resp = api.read_namespaced_pod_log(
                pod,
                self.namespace,
                follow=follow,
                _preload_content=False,
                _request_timeout=None if follow else 30,
            )
            for line in resp.stream(decode_content=True):
                yield from line.decode(errors="replace").splitlines()
        except k8s.ApiException as exc:
            log.info("no logs for %s: %s", pod, _message(exc))

    def watch(
        self,
        kind: str,
        *,
        resource_version: str,
        timeout: float,
        selector: str = "",
        field_selector: str = "",
    ) -> Iterator[tuple[str, dict]]:
        """(event type, object dict) from resource_version on, for at most ``timeout``s.

        Raises WatchExpired on 410 Gone: the caller lists again and resumes from the
        new resourceVersion (https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses).
        """
        spec, api = self._api(kind)
        opts = {
            "label_selector": selector or None,
            "field_selector": field_selector or None,
            "resource_version": resource_version,
            "timeout_seconds": max(1, int(timeout)),
            "_request_timeout": timeout + 5,
        }
        if spec.crd[0]:
            fn, args = api.list_namespaced_custom_object, self._crd_args(spec)
        else:
            fn, args = getattr(api, f"list_{spec.suffix}"), (self.namespace,)
        w = k8s_watch.Watch()
        try:
            for event in w.stream(fn, *args, **opts):
                yield event["type"], event["raw_object"]
        except k8s.ApiException as exc:
            if exc.status == 410 or "Expired" in str(exc.reason) or "Gone" in str(exc.reason):
                raise WatchExpired(f"watch {kind}: {exc.reason}", code="kube_410") from exc
            if exc.status >= 500 or exc.status == 429:
                raise TransientError(f"watch {kind}: {_message(exc)}") from exc
            raise PermanentError(f"watch {kind} was rejected: {_message(exc)}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientError(f"watch {kind}: connection lost ({exc})") from exc
        finally:
            w.stop()
