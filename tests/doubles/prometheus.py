"""A fake Prometheus: its HTTP query API (`GET /api/v1/query`) over real HTTP, evaluating
the subset of PromQL the gates' query templates use, over counter samples a test records.

Supported (anything else answers 400 bad_data, as Prometheus does for a parse error):

    sum(increase(metric{matchers}[Ns]))
    histogram_quantile(Q, sum by (le) (rate(metric_bucket{matchers}[Ns]))) [/ number]

Matchers are `label="value"` and `label=~"regex"` (anchored, as in Prometheus).  The
envelope is Prometheus's: {"status": "success", "data": {"resultType": "vector", "result":
[{"metric": {}, "value": [time, "1.5"]}]}}.  A vector with no series is an empty result.

https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_SELECTOR = r"(?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<matchers>[^}]*)\}\[(?P<window>\d+)s\]"
_SUM_INCREASE = re.compile(rf"^sum\(increase\({_SELECTOR}\)\)$")
_QUANTILE = re.compile(
    rf"^histogram_quantile\((?P<q>[0-9.]+),\s*sum by \(le\) \(rate\({_SELECTOR}\)\)\)(?:\s*/\s*(?P<div>[0-9.]+))?$")
_MATCHER = re.compile(r'\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')


class BadQuery(ValueError):
    pass


def _matchers(text: str) -> list[tuple[str, str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _MATCHER.match(text, pos)
        if not m:
            raise BadQuery(f"parse error at char {pos}: unexpected {text[pos:pos + 20]!r}")
        out.append((m["label"], m["op"], m["value"]))
        pos = m.end()
    return out


class FakePrometheus:
    def __init__(self) -> None:
        # (metric, frozenset(labels)) -> [(t, value)] sorted by t
        self.series: dict[tuple[str, frozenset], list[tuple[float, float]]] = defaultdict(list)
        self.queries: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- what a test records ----------------------------------------------------------
    def add(self, metric: str, labels: dict, t: float, value: float) -> None:
        """Record a counter's value at time t (seconds since the epoch)."""
        with self.lock:
            samples = self.series[(metric, frozenset(labels.items()))]
            samples.append((t, value))
            samples.sort()

    def count(self, metric: str, labels: dict, t: float, inc: float) -> None:
        """Increase a counter by `inc` at time t (it starts at 0)."""
        with self.lock:
            samples = self.series[(metric, frozenset(labels.items()))]
            last = samples[-1][1] if samples else 0.0
        self.add(metric, labels, t, last + inc)

    # --- evaluation -------------------------------------------------------------------
    def _select(self, metric: str, matchers: list[tuple[str, str, str]]):
        for (name, labels), samples in self.series.items():
            if name != metric:
                continue
            d = dict(labels)
            if all((d.get(label, "") == value) if op == "=" else re.fullmatch(value, d.get(label, ""))
                   for label, op, value in matchers):
                yield d, samples

    @staticmethod
    def _at(samples, t: float) -> float:
        value = 0.0
        for ts, v in samples:
            if ts > t:
                break
            value = v
        return value

    def _increase(self, samples, t: float, window: float) -> float | None:
        inside = [s for s in samples if t - window < s[0] <= t]
        if not inside:
            return None
        return max(0.0, self._at(samples, t) - self._at(samples, t - window))

    def evaluate(self, query: str, t: float) -> list[tuple[dict, float]]:
        query = query.strip()
        if m := _SUM_INCREASE.match(query):
            values = [self._increase(s, t, int(m["window"])) for _, s in self._select(m["metric"],
                                                                                        _matchers(m["matchers"]))]
            values = [v for v in values if v is not None]
            return [({}, sum(values))] if values else []
        if m := _QUANTILE.match(query):
            if not m["metric"].endswith("_bucket"):
                raise BadQuery("histogram_quantile needs a _bucket series")
            window = int(m["window"])
            buckets: dict[float, float] = defaultdict(float)
            for labels, samples in self._select(m["metric"], _matchers(m["matchers"])):
                inc = self._increase(samples, t, window)
                if inc is not None:
                    buckets[float(labels["le"])] += inc / window
            if not buckets:
                return []
            value = _quantile(float(m["q"]), sorted(buckets.items()))
            if m["div"]:
                value /= float(m["div"])
            return [({}, value)]
        raise BadQuery(f"parse error: unsupported query {query[:80]!r}")

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                if url.path != "/api/v1/query":
                    return self._answer(404, {"status": "error", "errorType": "not_found", "error": "not found"})
                params = parse_qs(url.query)
                query = (params.get("query") or [""])[0]
                t = float((params.get("time") or [time.time()])[0])
                fake.queries.append(query)
                try:
                    with fake.lock:
                        result = fake.evaluate(query, t)
                except (BadQuery, re.error) as exc:
                    return self._answer(400, {"status": "error", "errorType": "bad_data", "error": str(exc)})
                vector = [{"metric": labels, "value": [t, _format(v)]} for labels, v in result]
                return self._answer(200, {"status": "success", "data": {"resultType": "vector", "result": vector}})

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _format(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile: linear interpolation inside the bucket."""
    total = buckets[-1][1] if buckets and math.isinf(buckets[-1][0]) else (buckets[-1][1] if buckets else 0)
    if total == 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower_bound
            return lower_bound + (upper - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_bound, lower_count = upper, count
    return lower_bound
