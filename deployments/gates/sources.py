"""Where the gates read traffic figures from.

- `RouterCounters`: the runtime's own router counts (single host: HAProxy's per-server
  counters through the Runtime API `show stat`).  They are cumulative, so a window's
  figures are the difference from the reading at the window's start.
- `PrometheusQueries`: the Prometheus HTTP API (`/api/v1/query`), with query templates per
  router that the operator configures (Kubernetes: ingress-nginx or a Gateway API
  implementation).  Each query asks for the window directly.

Both answer `measure(revisions, base, since, now) -> (figures per revision, new base)`.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from django.conf import settings

from deployments.errors import TransientError
from deployments.runtimes.base import Runtime

from .judgement import Figures

# Query templates per router: $namespace, $service, $ingress, $route, $project, $revision
# and $window (e.g. "30s") are replaced by values checked against _LABEL_VALUE.  Requests
# and errors are counts over the window; latency is in seconds (here the p95).
DEFAULT_QUERIES: dict[str, dict[str, str]] = {
    # https://kubernetes.github.io/ingress-nginx/user-guide/monitoring/
    "nginx": {
        "requests": 'sum(increase(nginx_ingress_controller_requests{namespace="$namespace",'
                    'ingress="$ingress",service="$service"}[$window]))',
        "errors": 'sum(increase(nginx_ingress_controller_requests{namespace="$namespace",'
                  'ingress="$ingress",service="$service",status=~"5.."}[$window]))',
        "latency": 'histogram_quantile(0.95, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_'
                   'bucket{namespace="$namespace",ingress="$ingress",service="$service"}[$window])))',
    },
    # Istio's standard metrics, one Gateway API implementation; others are configured.
    # https://istio.io/latest/docs/reference/config/metrics/
    "gateway": {
        "requests": 'sum(increase(istio_requests_total{destination_service_namespace="$namespace",'
                    'destination_service_name="$service"}[$window]))',
        "errors": 'sum(increase(istio_requests_total{destination_service_namespace="$namespace",'
                  'destination_service_name="$service",response_code=~"5.."}[$window]))',
        "latency": 'histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_milliseconds_bucket{'
                   'destination_service_namespace="$namespace",destination_service_name="$service"}[$window])))'
                   ' / 1000',
    },
}
# Names and revisions are DNS labels already; checked again because they go inside quotes.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")


class GateSourceError(TransientError):
    """The metrics source could not answer: no verdict this time."""


@dataclass(frozen=True)
class RouterCounters:
    runtime: Runtime
    project: str
    label: str = "HAProxy statistics"

    def measure(self, *, revisions: Sequence[str], base: Mapping, since: datetime,
                now: datetime) -> tuple[dict[str, Figures], dict]:
        counters = self.runtime.traffic_counters(project=self.project) or {}
        seconds = max(0.0, (now - since).total_seconds())
        figures, reading = {}, {}
        for revision in revisions:
            c = counters.get(revision)
            if c is None:
                figures[revision] = Figures(seconds=seconds)
                continue
            reading[revision] = [c.requests, c.errors]
            before = base.get(revision) or [0, 0]
            requests, errors = c.requests - int(before[0]), c.errors - int(before[1])
            if requests < 0 or errors < 0:  # counters restarted (an HAProxy reload, a re-added server)
                requests, errors = c.requests, c.errors
            figures[revision] = Figures(requests=requests, errors=min(errors, requests), seconds=seconds,
                                        latency_ms=c.latency_ms, latency_label=c.latency_label or "latency")
        return figures, reading


def _render(template: str, labels: Mapping[str, str]) -> str:
    for key, value in labels.items():
        if not _LABEL_VALUE.match(str(value)):
            raise GateSourceError(f"refusing to put {key}={str(value)[:60]!r} in a Prometheus query")
    return string.Template(template).safe_substitute(labels)


@dataclass(frozen=True)
class PrometheusQueries:
    url: str
    queries: Mapping[str, str]  # requests, errors, latency (optional)
    labels: Mapping[str, Mapping[str, str]]  # revision -> template values
    min_window: float = 30.0  # seconds: at least a couple of scrape intervals
    timeout: float = 5.0
    label: str = "Prometheus"

    def _scalar(self, client: httpx.Client, query: str, at: datetime) -> float | None:
        try:
            answer = client.get(f"{self.url.rstrip('/')}/api/v1/query",
                                params={"query": query, "time": f"{at.timestamp():.3f}"})
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise GateSourceError(f"Prometheus did not answer: {exc.__class__.__name__}") from exc
        if answer.status_code != 200 or body.get("status") != "success":
            raise GateSourceError(f"Prometheus refused the query: {str(body.get('error', answer.status_code))[:200]}")
        data = body.get("data") or {}
        result = data.get("result")
        if data.get("resultType") == "scalar":
            result = [{"value": result}]
        if not result:
            return None  # no series: nothing was counted in the window
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise GateSourceError("Prometheus answered in an unexpected shape") from exc
        return None if math.isnan(value) or math.isinf(value) else value

    def measure(self, *, revisions: Sequence[str], base: Mapping, since: datetime,
                now: datetime) -> tuple[dict[str, Figures], dict]:
        seconds = max(self.min_window, (now - since).total_seconds())
        window = f"{math.ceil(seconds)}s"
        figures = {}
        with httpx.Client(timeout=self.timeout) as client:
            for revision in revisions:
                values = {**self.labels.get(revision, {}), "revision": revision, "window": window}
                requests = self._scalar(client, _render(self.queries["requests"], values), now) or 0.0
                errors = self._scalar(client, _render(self.queries["errors"], values), now) or 0.0
                latency = None
                if self.queries.get("latency"):
                    latency = self._scalar(client, _render(self.queries["latency"], values), now)
                # increase() extrapolates: round to whole requests.
                figures[revision] = Figures(
                    requests=round(requests), errors=min(round(errors), round(requests)), seconds=seconds,
                    latency_ms=None if latency is None else latency * 1000.0, latency_label="p95")
        return figures, {}


def prometheus_queries_for(router: str) -> dict[str, str] | None:
    """The operator's templates for this router (SWITCHBACK_GATE_PROMETHEUS_QUERIES, a JSON
    object router -> {requests, errors, latency}), else the built-in ones."""
    configured = settings.SWITCHBACK.get("GATE_PROMETHEUS_QUERIES") or ""
    if configured:
        try:
            table = json.loads(configured) if isinstance(configured, str) else dict(configured)
        except ValueError:
            table = {}
        if router in table:
            return table[router]
    return DEFAULT_QUERIES.get(router)


def gate_source_for(*, runtime: Runtime, project: str, revisions: Sequence[str]):
    """The runtime's own counters when it keeps them, else Prometheus if the operator set
    it up; None when nothing can measure this project's traffic."""
    if runtime.traffic_counters(project=project) is not None:
        return RouterCounters(runtime=runtime, project=project)
    url = settings.SWITCHBACK.get("GATE_PROMETHEUS_URL") or ""
    labels = {revision: runtime.metric_labels(project=project, revision=revision) for revision in revisions}
    router = next((v.get("router", "") for v in labels.values() if v), "")
    queries = prometheus_queries_for(router) if url else None
    if not queries or not queries.get("requests") or not queries.get("errors"):
        return None
    return PrometheusQueries(url=url, queries=queries, labels=labels,
                             min_window=float(settings.SWITCHBACK.get("GATE_PROMETHEUS_WINDOW", 30)))
