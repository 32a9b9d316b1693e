"""HAProxy configuration rendered from the router's desired state (pure functions).

The state file is the source of truth for a restart or a reload: every Runtime API change
is mirrored there, so a regenerated configuration carries the same servers, weights and
states, and a reload changes nothing that is live.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ..base import STICKY_COOKIE, route_name_check, route_value_check

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAX_WEIGHT = 256  # HAProxy's ceiling for a server weight

# Server states, as the Runtime API names them.
READY, DRAIN, MAINT = "ready", "drain", "maint"


@dataclass
class ServerState:
    host: str
    port: int
    revision: str
    weight: int = 0
    state: str = MAINT


# A probe path as HAProxy may carry it in its configuration: one word, no quoting, no
# comment or escape characters.  Project admins set it: anything else is refused.
CHECK_PATH = re.compile(r"^/[A-Za-z0-9._~%/?=&+-]{0,200}$")


@dataclass(frozen=True)
class HealthCheck:
    """HAProxy's own check of every server on the readiness path, from the project's probe:
    a server failing ``fall`` checks ``inter_ms`` apart leaves rotation; ``rise`` passes bring
    it back."""

    path: str
    inter_ms: int = 1000
    fall: int = 3
    rise: int = 1
    timeout_ms: int = 1000

    def __post_init__(self):
        if not CHECK_PATH.match(self.path):
            raise ValueError(f"readiness path {self.path!r} cannot be used for a health check")
        for name in ("inter_ms", "fall", "rise", "timeout_ms"):
            if not 1 <= int(getattr(self, name)) <= 3_600_000:
                raise ValueError(f"health check {name} out of range: {getattr(self, name)!r}")

    def server_options(self) -> str:
        """The per-server keywords (dynamic servers on 2.6 take no default-server)."""
        return f"check inter {int(self.inter_ms)} fall {int(self.fall)} rise {int(self.rise)}"


BUCKETS = 100  # client buckets of 1%: sticky shares follow whole-percent weights
STICKY_MAX_AGE = 30 * 86400


@dataclass(frozen=True)
class RouteRules:
    """A backend's routing beyond weights (part of its configuration: a change reloads).

    sticky: every client carries an id (cookie ``sb_client``, made by HAProxy), hashed into
    one of BUCKETS buckets; the route map names the server of each bucket, handed out in
    proportion to the weights, newest revision first.  So the share of clients follows the
    weights, a client keeps its revision while they hold, and when a canary grows only
    stable clients move (to it).  Why not HAProxy's own means: consistent hashing does not
    apply weight changes faithfully on 2.6 (measured: weight 0 still took a third of the
    clients) and dynamic servers take no ``cookie`` keyword.
    header/header_value, cookie: a request matching them goes to the preview revision.
    The names and value end up in the configuration: checked here again, whatever the caller.
    """

    sticky: bool = False
    header: str = ""
    header_value: str = "always"
    cookie: str = ""

    def __post_init__(self):
        try:
            if self.header:
                route_name_check(self.header, what="header")
                route_value_check(self.header_value)
            if self.cookie:
                route_name_check(self.cookie, what="cookie")
        except ValueError as exc:
            raise ValueError(f"cannot route on it: {exc}") from exc

    @property
    def matches(self) -> bool:
        return bool(self.header or self.cookie)

    @property
    def active(self) -> bool:
        return self.sticky or self.matches


@dataclass
class ProjectState:
    servers: dict[str, ServerState] = field(default_factory=dict)
    check: HealthCheck | None = None
    rules: RouteRules | None = None
    preview: str = ""  # the revision header/cookie matches reach (data: the route map)


@dataclass
class RouterState:
    projects: dict[str, ProjectState] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"projects": {p: asdict(ps) for p, ps in self.projects.items()}}

    @classmethod
    def from_json(cls, data: dict) -> RouterState:
        projects = {}
        for name, ps in (data.get("projects") or {}).items():
            servers = {s: ServerState(**v) for s, v in (ps.get("servers") or {}).items()}
            check = HealthCheck(**ps["check"]) if ps.get("check") else None
            rules = RouteRules(**ps["rules"]) if ps.get("rules") else None
            projects[name] = ProjectState(servers=servers, check=check, rules=rules, preview=ps.get("preview") or "")
        return cls(projects=projects)


@dataclass(frozen=True)
class Paths:
    config: str
    hosts_map: str
    admin_socket: str
    master_socket: str
    pidfile: str
    routes_dir: str = ""


def route_map_path(paths: Paths, backend: str) -> str:
    return f"{paths.routes_dir}/{backend}.map"


def backend_name(project: str, instance: str = "") -> str:
    # The installation's id too: logs, stats and the Runtime API name whose app it is.
    return f"be_{instance}_{project}" if instance else f"be_{project}"


def server_name(revision: str, index: int) -> str:
    return f"r{revision}-{index}"


def host_for(project: str, base_domain: str) -> str:
    return f"{project}.{base_domain}".lower()


def render_hosts_map(state: RouterState, base_domain: str, instance: str = "") -> str:
    lines = [f"{host_for(p, base_domain)} {backend_name(p, instance)}" for p in sorted(state.projects)]
    return "\n".join(lines) + ("\n" if lines else "")


def _server_line(name: str, server: ServerState, check: HealthCheck | None) -> str:
    # A drained server is written as weight 0: the configuration has no "drain" keyword,
    # and weight 0 likewise takes no new requests while in-flight ones finish.
    weight = server.weight if server.state == READY else 0
    line = f"    server {name} {server.host}:{server.port} weight {weight}"
    if check is not None:
        line += f" {check.server_options()}"
    if server.state == MAINT:
        line += " disabled"
    return line


def render_config(
    state: RouterState, *, bind: str, paths: Paths, hard_stop_after: int = 120, instance: str = ""
) -> str:
    out = [
        "# Generated by Switchback's single-host runtime; edits are overwritten.",
        "global",
        "    master-worker",
        # expose-fd lets a reloaded worker take over the listening sockets: no refused
        # connection during a reload.
        f"    stats socket {paths.admin_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        "    maxconn 2048",
        # Old workers keep serving in-flight requests after a reload, but not forever.
        f"    hard-stop-after {hard_stop_after}s",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout queue 10s",
        # A connection refused by a replica that just died is retried on another one.
        "    retries 3",
        "    option redispatch 1",
        "",
        "frontend fe_http",
        f"    bind {bind}",
        # Route by Host without its port: "hello.localhost:8080" -> be_hello.
        "    http-request set-var(txn.sb_host) req.hdr(host),field(1,:),lower",
        f"    use_backend %[var(txn.sb_host),map({paths.hosts_map},be_unknown)]",
        "    default_backend be_unknown",
        "",
        "backend be_unknown",
        '    http-request return status 404 content-type text/plain string "no app at this host\\n"',
    ]
    for project in sorted(state.projects):
        # Weighted random, not roundrobin: after a weight change roundrobin "catches up"
        # and may send a burst of hundreds of requests to one side of a 50/50 split,
        # while random(1) follows the weights from the first request (canary steps).
        out += ["", f"backend {backend_name(project, instance)}", "    balance random(1)"]
        check = state.projects[project].check
        if check is not None:
            # Readiness after the switch too: an unready replica leaves rotation within
            # fall x inter and comes back after rise passes.  Any 2xx/3xx passes, as for
            # the platform's own probes.
            out += ["    option httpchk", f"    http-check send meth GET uri {check.path}",
                    "    http-check expect rstatus ^[23]", f"    timeout check {int(check.timeout_ms)}ms"]
        rules = state.projects[project].rules
        if rules is not None and rules.active:
            out += _route_lines(rules, route_map_path(paths, backend_name(project, instance)))
        servers = state.projects[project].servers
        out += [_server_line(name, servers[name], check) for name in sorted(servers)]
    return "\n".join(out) + "\n"


def split_weights(percent: int, replicas: int) -> int:
    """Per-server weight for a revision getting ``percent`` of traffic over ``replicas``."""
    if percent <= 0 or replicas <= 0:
        return 0
    return max(1, min(MAX_WEIGHT, round(percent * MAX_WEIGHT / 100 / replicas)))


def _route_lines(rules: RouteRules, route_map: str) -> list[str]:
    """The backend's rules: a client bucket, the route map's server for it, use-server.

    Only the checked names and value of ``rules`` and our own paths are written here; which
    server a bucket or a preview request gets is data in the route map, changed through
    the Runtime API without a reload.  A server that is down is skipped by use-server
    (HAProxy falls back to the weights): availability comes before stickiness.
    """
    out = []
    if rules.sticky:
        out += [
            f"    http-request set-var(txn.sb_cid) req.cook({STICKY_COOKIE})",
            "    http-request set-var(txn.sb_new) uuid if !{ var(txn.sb_cid) -m found }",
            "    http-request set-var(txn.sb_cid) var(txn.sb_new) if { var(txn.sb_new) -m found }",
            f"    http-request set-var(txn.sb_bucket) var(txn.sb_cid),crc32(1),mod({BUCKETS})",
        ]
    else:
        out.append(f"    http-request set-var(txn.sb_bucket) rand({BUCKETS})")
    if rules.header:
        out.append(f"    acl sb_preview req.hdr({rules.header}) -m str {rules.header_value}")
    if rules.cookie:
        out.append(f"    acl sb_preview req.cook({rules.cookie}) -m str always")
    if rules.matches:
        out.append(f"    http-request set-var(txn.sb_srv) var(txn.sb_bucket),add({BUCKETS}),map({route_map}) "
                   "if sb_preview")
    if rules.sticky:
        out.append(f"    http-request set-var(txn.sb_srv) var(txn.sb_bucket),map({route_map}) "
                   "if !{ var(txn.sb_srv) -m found }")
    out.append("    use-server %[var(txn.sb_srv)] if { var(txn.sb_srv) -m found }")
    if rules.sticky:
        out.append(f'    http-response add-header Set-Cookie "{STICKY_COOKIE}=%[var(txn.sb_new)]; Path=/; '
                   f'Max-Age={STICKY_MAX_AGE}; HttpOnly; SameSite=Lax" if {{ var(txn.sb_new) -m found }}')
    return out


def _revision_order(revision: str):
    return (1, int(revision), "") if revision.isdigit() else (0, 0, revision)


def route_map(ps: ProjectState) -> dict[str, str]:
    """The route map of a backend: bucket (0..99) -> server, and 100 + bucket -> a server of
    the preview revision.  Pure: a function of the saved state only.

    Buckets go to revisions in proportion to their servers' weights (largest remainder),
    the newest revision taking the lowest buckets: as a canary's weight grows its clients
    keep it and only stable clients move to it; within a revision buckets alternate over
    its servers.  Only servers taking new requests (ready, weight > 0) get buckets.
    """
    entries: dict[str, str] = {}
    rules = ps.rules
    if rules is None or not rules.active:
        return entries
    serving = {n: s for n, s in ps.servers.items() if s.state == READY and s.weight > 0}
    if rules.sticky and serving:
        by_revision: dict[str, list[str]] = {}
        for name in sorted(serving):
            by_revision.setdefault(serving[name].revision, []).append(name)
        order = sorted(by_revision, key=_revision_order, reverse=True)
        weight = {r: sum(serving[n].weight for n in by_revision[r]) for r in order}
        total = sum(weight.values())
        exact = {r: BUCKETS * weight[r] / total for r in order}
        share = {r: int(exact[r]) for r in order}
        for r in sorted(order, key=lambda r: exact[r] - share[r], reverse=True)[: BUCKETS - sum(share.values())]:
            share[r] += 1
        bucket = 0
        for r in order:
            names = by_revision[r]
            for k in range(share[r]):
                entries[str(bucket)] = names[k % len(names)]
                bucket += 1
    preview = sorted(n for n, s in serving.items() if s.revision == ps.preview) if ps.preview else []
    if rules.matches and preview:
        for b in range(BUCKETS):
            entries[str(BUCKETS + b)] = preview[b % len(preview)]
    return entries


def render_route_map(entries: dict[str, str]) -> str:
    return "".join(f"{k} {v}\n" for k, v in sorted(entries.items(), key=lambda kv: int(kv[0])))
