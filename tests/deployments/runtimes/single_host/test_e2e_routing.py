"""End to end with real Podman containers behind real HAProxy: a sticky client sees one
revision throughout a canary, the share of clients follows the weights, and
`X-Canary: always` always reaches the canary (issue 13)."""

from __future__ import annotations

import dataclasses
import http.client
import random
import uuid
from collections import Counter
from urllib.parse import urlsplit

import pytest

from deployments.runtimes.base import STICKY_COOKIE, BuildSpec, HealthState, Probe, RevisionSpec, TrafficRouting

from .helpers import wait_health

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]

READY = Probe(path="/readyz", period_seconds=0.2, timeout_seconds=1, failure_threshold=3)
ROUTING = TrafficRouting(sticky=True, header="X-Canary", header_value="always")
_rng = random.Random(29)
CLIENTS = [str(uuid.UUID(int=_rng.getrandbits(128), version=4)) for _ in range(300)]


def _get(runtime, project: str, headers: dict[str, str]) -> tuple[int, str, str | None]:
    base, host = runtime.route_url(project)
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        conn.request("GET", "/version", headers={"Host": host, **headers})
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip(), resp.getheader("Set-Cookie")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def shop(runtime, project_prefix, tmp_path_factory):
    from tests.single_host_fixtures import GitRepo

    repo = GitRepo(str(tmp_path_factory.mktemp("routing-repo")))
    project = f"{project_prefix}-routed"
    shas = {"1": repo.commit_example("hello", "one"), "2": repo.commit_example("hello", "two")}
    for revision, sha in shas.items():
        built = runtime.build(spec=BuildSpec(project=project, sha=sha, clone_url=repo.url), log=lambda line: None)
        runtime.start_revision(spec=RevisionSpec(project=project, revision=revision, image=built.ref, sha=sha,
                                                 readiness=READY, replicas=2 if revision == "1" else 1))
        assert wait_health(runtime, project, revision).state == HealthState.READY
    runtime.set_traffic(project=project, weights={"1": 100}, routing=TrafficRouting(sticky=True, header="X-Canary"))
    return {"project": project, "shas": shas}


def _revision_of(runtime, shop, client: str) -> str:
    status, body, _ = _get(runtime, shop["project"], {"Cookie": f"{STICKY_COOKIE}={client}"})
    assert status == 200, body
    return {sha: rev for rev, sha in shop["shas"].items()}[body]


def test_sticky_clients_and_the_canary_header_through_a_canary(runtime, shop):
    project = shop["project"]
    # A new client is given its id by HAProxy.
    status, _, set_cookie = _get(runtime, project, {})
    assert status == 200 and (set_cookie or "").startswith(f"{STICKY_COOKIE}=")

    before: set[str] = set()
    for weight in (10, 50):
        runtime.set_traffic(project=project, weights={"1": 100 - weight, "2": weight},
                            routing=dataclasses.replace(ROUTING, preview="2"))
        seen = {c: {_revision_of(runtime, shop, c) for _ in range(3)} for c in CLIENTS}
        assert all(len(revisions) == 1 for revisions in seen.values())  # one revision per client throughout
        on_canary = {c for c, revisions in seen.items() if revisions == {"2"}}
        assert before <= on_canary  # the canary's clients stay as it grows
        assert abs(len(on_canary) / len(CLIENTS) - weight / 100) <= 0.06, (weight, len(on_canary))
        # X-Canary: always reaches the canary every time, sticky cookie or not.
        answers = Counter(_get(runtime, project, {"X-Canary": "always", **({"Cookie": f"{STICKY_COOKIE}={c}"}
                                                                          if i % 2 else {})})[1]
                          for i, c in enumerate(CLIENTS[:100]))
        assert answers == {shop["shas"]["2"]: 100}
        before = on_canary

    # Aborted: everyone, canary clients and the header too, is back on revision 1.
    runtime.set_traffic(project=project, weights={"1": 100}, routing=ROUTING)
    assert {_revision_of(runtime, shop, c) for c in CLIENTS} == {"1"}
    assert {_get(runtime, project, {"X-Canary": "always"})[1] for _ in range(30)} == {shop["shas"]["1"]}
