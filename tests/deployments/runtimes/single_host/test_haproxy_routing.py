"""Sticky clients and header/cookie routing: the rules rendered, then a real HAProxy
driven through its Runtime API, with in-process backends (no containers needed)."""

from __future__ import annotations

import http.client
import os
import random
import shutil
import subprocess
import uuid
from collections import Counter

import pytest

from deployments.runtimes.base import STICKY_COOKIE
from deployments.runtimes.single_host.haproxy import HAProxyRouter, _running
from deployments.runtimes.single_host.haproxy_config import (
    BUCKETS,
    READY,
    Paths,
    ProjectState,
    RouterState,
    RouteRules,
    ServerState,
    render_config,
    route_map,
    split_weights,
)
from tests.single_host_fixtures import free_port

from .backends import Backend

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
def needs_haproxy(test):
    test = pytest.mark.haproxy(test)
    skip = pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed (run scripts/install-system-deps.sh)")
    return skip(test)


# --- the rules, rendered -------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "X-Canary always", "X-Canary\n    use_backend evil", "X#Canary", "X-Canary)", "X'Canary", "X|Canary",
    "", "-leading-dash", "Host", "cookie", "Transfer-Encoding", "X" * 64, "X-Cänary", "%[src]",
])
def test_a_header_name_that_is_not_a_safe_token_is_refused(name):
    with pytest.raises(ValueError):
        RouteRules(header=name or " ")


@pytest.mark.parametrize("value", ["always yes", "a;b", "%[src]", "x\nuse-server r1-0", "", "a" * 64, "'q'"])
def test_a_header_value_outside_the_safe_charset_is_refused(value):
    with pytest.raises(ValueError):
        RouteRules(header="X-Canary", header_value=value)


def test_a_cookie_name_is_checked_and_the_platform_cookie_is_not_taken():
    with pytest.raises(ValueError):
        RouteRules(cookie=STICKY_COOKIE)
    with pytest.raises(ValueError):
        RouteRules(cookie="a=b")
    assert RouteRules(cookie="canary").matches


def _servers(**weights_by_name) -> dict[str, ServerState]:
    return {n: ServerState("127.0.0.1", 40000 + i, n[1:].split("-")[0], weight=w, state=READY if w else "drain")
            for i, (n, w) in enumerate(weights_by_name.items())}


def test_buckets_follow_the_weights_newest_revision_first():
    ps = ProjectState(servers=_servers(**{"r1-0": 115, "r1-1": 115, "r2-0": 26}), rules=RouteRules(sticky=True))
    entries = route_map(ps)
    owners = [entries[str(b)] for b in range(BUCKETS)]
    assert Counter(name[:2] for name in owners) == {"r1": 90, "r2": 10}
    assert set(owners[:10]) == {"r2-0"}  # the newest revision holds the low buckets
    assert Counter(owners[10:]) == {"r1-0": 45, "r1-1": 45}  # alternating over replicas


def test_a_growing_canary_keeps_its_clients_and_takes_only_stable_ones():
    before = route_map(ProjectState(servers=_servers(**{"r1-0": 230, "r2-0": 26}), rules=RouteRules(sticky=True)))
    after = route_map(ProjectState(servers=_servers(**{"r1-0": 128, "r2-0": 128}), rules=RouteRules(sticky=True)))
    canary_before = {b for b in range(BUCKETS) if before[str(b)] == "r2-0"}
    canary_after = {b for b in range(BUCKETS) if after[str(b)] == "r2-0"}
    assert canary_before < canary_after and len(canary_after) == 50


def test_drained_servers_get_no_bucket_and_preview_entries_need_a_serving_preview():
    ps = ProjectState(servers=_servers(**{"r1-0": 256, "r2-0": 0}), rules=RouteRules(sticky=True, header="X-Canary"),
                      preview="2")
    entries = route_map(ps)
    assert set(entries.values()) == {"r1-0"}  # r2 is drained: neither buckets nor preview
    ps.servers["r2-0"].weight, ps.servers["r2-0"].state = 3, READY
    entries = route_map(ps)
    assert {entries[str(BUCKETS + b)] for b in range(BUCKETS)} == {"r2-0"}


def test_no_rules_no_map_and_no_rule_lines(tmp_path):
    ps = ProjectState(servers=_servers(**{"r1-0": 256}))
    assert route_map(ps) == {}
    text = render_config(RouterState(projects={"hello": ps}), bind="127.0.0.1:1", paths=_paths(tmp_path))
    assert "use-server" not in text and "sb_bucket" not in text


def _paths(tmp_path) -> Paths:
    return Paths(config=str(tmp_path / "haproxy.cfg"), hosts_map=str(tmp_path / "hosts.map"),
                 admin_socket=str(tmp_path / "admin.sock"), master_socket=str(tmp_path / "master.sock"),
                 pidfile=str(tmp_path / "haproxy.pid"), routes_dir=str(tmp_path))


@pytest.mark.parametrize("rules", [
    RouteRules(sticky=True), RouteRules(header="X-Canary"), RouteRules(cookie="canary"),
    RouteRules(sticky=True, header="X-Preview", header_value="team-a.1", cookie="canary"),
])
@needs_haproxy
def test_rendered_rules_are_a_valid_haproxy_configuration(tmp_path, rules):
    state = RouterState(projects={"hello": ProjectState(servers=_servers(**{"r1-0": 256}), rules=rules)})
    paths = _paths(tmp_path)
    text = render_config(state, bind="127.0.0.1:1", paths=paths, instance="i1")
    (tmp_path / "haproxy.cfg").write_text(text)
    (tmp_path / "hosts.map").write_text("")
    (tmp_path / "be_i1_hello.map").write_text("")
    check = subprocess.run([HAPROXY, "-c", "-f", paths.config], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    if rules.header:
        assert f"req.hdr({rules.header}) -m str {rules.header_value}" in text


# --- a real HAProxy ------------------------------------------------------------------------

@pytest.fixture
def router(tmp_path):
    r = HAProxyRouter(str(tmp_path), bind=f"127.0.0.1:{free_port()}")
    r.ensure_running()
    yield r
    pid = r.pid()
    r.stop()
    assert pid is None or not _running(pid), "haproxy left running"


@pytest.fixture
def backends():
    made = {name: Backend(name) for name in ("stable-0", "stable-1", "canary-0")}
    yield made
    for b in made.values():
        b.close()


def _get(router, *, headers=None) -> tuple[str, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection(router.bind, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": "shop.localhost", **(headers or {})})
        resp = conn.getresponse()
        return resp.read().decode(), resp
    finally:
        conn.close()


def _canary(router, project, revision_weights: dict[str, int], *, preview: str = "") -> None:
    """What the runtime does for a canary step: per-server weights from percentages."""
    servers = router.load_state().projects[project].servers
    weights = {}
    for revision, percent in revision_weights.items():
        names = [n for n, s in servers.items() if s.revision == revision]
        weights.update({n: split_weights(percent, len(names)) for n in names if percent})
    router.set_weights(project, weights, preview=preview)


def _setup(router, backends, rules: RouteRules) -> None:
    router.ensure_backend("shop", rules=rules)
    router.sync_servers("shop", "1", {"r1-0": ("127.0.0.1", backends["stable-0"].port),
                                      "r1-1": ("127.0.0.1", backends["stable-1"].port)})
    router.sync_servers("shop", "2", {"r2-0": ("127.0.0.1", backends["canary-0"].port)})


# Deterministic client ids: the same buckets every run, so no assertion here depends on luck.
_rng = random.Random(13)
CLIENTS = [str(uuid.UUID(int=_rng.getrandbits(128), version=4)) for _ in range(600)]


def _where(router, client: str) -> str:
    body, _ = _get(router, headers={"Cookie": f"{STICKY_COOKIE}={client}"})
    return body


@needs_haproxy
def test_sticky_clients_keep_their_revision_and_the_share_of_clients_follows_the_weight(router, backends):
    _setup(router, backends, RouteRules(sticky=True))

    _canary(router, "shop", {"1": 90, "2": 10}, preview="2")
    # A new client is given an id by HAProxy, and keeps its revision with it.
    body, resp = _get(router)
    set_cookie = resp.getheader("Set-Cookie") or ""
    assert set_cookie.startswith(f"{STICKY_COOKIE}=") and "HttpOnly" in set_cookie
    client_id = set_cookie.split(";", 1)[0].split("=", 1)[1]
    first = _where(router, client_id)
    assert all(_where(router, client_id) == first for _ in range(20))
    body, resp = _get(router, headers={"Cookie": f"{STICKY_COOKIE}={client_id}"})
    assert resp.getheader("Set-Cookie") is None  # a known client gets no new id

    # 10%: every client sees one revision (one replica, even) on every request.
    seen = {c: _where(router, c) for c in CLIENTS}
    for c in CLIENTS[:100]:
        assert {_where(router, c) for _ in range(5)} == {seen[c]}
    on_canary = {c for c, b in seen.items() if b == "canary-0"}
    assert 0.05 <= len(on_canary) / len(CLIENTS) <= 0.15, len(on_canary)
    stable_replicas = Counter(b for b in seen.values() if b != "canary-0")
    assert set(stable_replicas) == {"stable-0", "stable-1"}

    # 50%: the canary's clients stay; only stable clients move, to the canary.
    _canary(router, "shop", {"1": 50, "2": 50}, preview="2")
    seen50 = {c: _where(router, c) for c in CLIENTS}
    assert all(seen50[c] == "canary-0" for c in on_canary)
    assert all(seen50[c] == seen[c] for c in CLIENTS if seen50[c] != "canary-0")
    assert 0.40 <= sum(b == "canary-0" for b in seen50.values()) / len(CLIENTS) <= 0.60

    # Abort: weights back to 100/0 and nobody, sticky or not, reaches the canary.
    _canary(router, "shop", {"1": 100}, preview="")
    assert {_where(router, c) for c in CLIENTS} == {"stable-0", "stable-1"}


@needs_haproxy
def test_a_matching_header_or_cookie_reaches_the_preview_whatever_the_weight(router, backends):
    _setup(router, backends, RouteRules(header="X-Canary", header_value="always", cookie="canary"))
    _canary(router, "shop", {"1": 99, "2": 1}, preview="2")

    assert {_get(router, headers={"X-Canary": "always"})[0] for _ in range(200)} == {"canary-0"}
    assert {_get(router, headers={"Cookie": "canary=always"})[0] for _ in range(50)} == {"canary-0"}
    plain = Counter(_get(router)[0] for _ in range(200))
    assert plain["canary-0"] < 20  # about 1%: the weights rule everyone else
    wrong = Counter(_get(router, headers={"X-Canary": "never"})[0] for _ in range(200))
    assert wrong["canary-0"] < 20

    # Rules changed (no header any more): a reload, and the header means nothing.
    router.ensure_backend("shop", rules=RouteRules(cookie="canary"))
    assert Counter(_get(router, headers={"X-Canary": "always"})[0] for _ in range(200))["canary-0"] < 20
    assert {_get(router, headers={"Cookie": "canary=always"})[0] for _ in range(50)} == {"canary-0"}

    # No rollout any more (all on revision 1, preview cleared): the cookie reaches revision 1.
    _canary(router, "shop", {"1": 100}, preview="")
    assert {_get(router, headers={"Cookie": "canary=always"})[0] for _ in range(50)} <= {"stable-0", "stable-1"}


@needs_haproxy
def test_route_maps_survive_a_reload_and_a_restart(router, backends):
    _setup(router, backends, RouteRules(sticky=True, header="X-Canary"))
    _canary(router, "shop", {"1": 50, "2": 50}, preview="2")
    before = {c: _where(router, c) for c in CLIENTS[:200]}
    router.ensure_backend("other")  # a reload for another project
    assert {c: _where(router, c) for c in CLIENTS[:200]} == before
    router.stop()
    router.ensure_running()  # a cold start from the saved state and map files
    assert {c: _where(router, c) for c in CLIENTS[:200]} == before
    assert _get(router, headers={"X-Canary": "always"})[0] == "canary-0"


@needs_haproxy
def test_a_route_map_push_that_failed_is_retried_at_the_next_change(router, backends, monkeypatch):
    from deployments.runtimes.single_host.haproxy_api import HAProxyError

    _setup(router, backends, RouteRules(header="X-Canary"))
    real = router.api.map_replace
    monkeypatch.setattr(router.api, "map_replace", lambda *a, **k: (_ for _ in ()).throw(HAProxyError("blip")))
    with pytest.raises(HAProxyError):
        _canary(router, "shop", {"1": 90, "2": 10}, preview="2")
    # HAProxy kept the old map (no preview yet): the header is not routed.
    assert Counter(_get(router, headers={"X-Canary": "always"})[0] for _ in range(100))["canary-0"] < 30
    monkeypatch.setattr(router.api, "map_replace", real)
    _canary(router, "shop", {"1": 90, "2": 10}, preview="2")  # the same weights: the state does not change
    assert {_get(router, headers={"X-Canary": "always"})[0] for _ in range(30)} == {"canary-0"}
