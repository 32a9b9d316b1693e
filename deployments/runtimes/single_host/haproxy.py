"""Our own HAProxy process and the router that drives it.

Changes to servers, weights and states go through the Runtime API (instant, no reload).
A new project needs a new backend, which HAProxy 2.6 cannot create at run time: then we
regenerate the configuration from the saved state and reload through the master socket.
A master-worker reload hands the listening sockets to the new worker while the old one
finishes its in-flight requests, so no request is dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping

from deployments.errors import PermanentError, TransientError

from .haproxy_api import HAProxyError, RuntimeAPI
from .haproxy_config import (
    DRAIN,
    MAINT,
    READY,
    HealthCheck,
    Paths,
    ProjectState,
    RouterState,
    RouteRules,
    ServerState,
    backend_name,
    render_config,
    render_hosts_map,
    render_route_map,
    route_map,
    route_map_path,
)

KEEP = object()  # "leave the backend's health check as it is"


def _running(pid: int) -> bool:
    """True if the process exists and is not a zombie (a daemon's reaper may be slow)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
    return found


class HAProxyRouter:
    def __init__(
        self,
        state_dir: str,
        *,
        bind: str = "127.0.0.1:8080",
        base_domain: str = "localhost",
        haproxy_bin: str | None = None,
        instance: str = "",
    ):
        self.instance = instance
        self.dir = os.path.join(state_dir, "haproxy")
        os.makedirs(self.dir, exist_ok=True)
        self.bind = bind
        self.base_domain = base_domain
        self.haproxy_bin = haproxy_bin or shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.paths = Paths(
            config=os.path.join(self.dir, "haproxy.cfg"),
            hosts_map=os.path.join(self.dir, "hosts.map"),
            admin_socket=os.path.join(self.dir, "admin.sock"),
            master_socket=os.path.join(self.dir, "master.sock"),
            pidfile=os.path.join(self.dir, "haproxy.pid"),
            routes_dir=os.path.join(self.dir, "routes"),
        )
        os.makedirs(self.paths.routes_dir, exist_ok=True)
        self._state_file = os.path.join(self.dir, "state.json")
        self._lock_file = os.path.join(self.dir, "lock")
        self.api = RuntimeAPI(self.paths.admin_socket)

    # -- state ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[RouterState]:
        """Serialize changes across processes; yield the state, save it on success."""
        with open(self._lock_file, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.load_state()
            before = json.dumps(state.to_json(), sort_keys=True)
            yield state
            after = json.dumps(state.to_json(), sort_keys=True)
            if after != before:
                tmp = self._state_file + ".tmp"
                with open(tmp, "w") as f:
                    f.write(after)
                os.replace(tmp, self._state_file)
            # Every time, not only on a change: a push that failed last time is retried.
            self._routes_sync(state)

    def _routes_sync(self, state: RouterState) -> None:
        """Each routed backend's map follows the saved state: the file (read at a reload)
        and HAProxy's live copy (replaced atomically through the Runtime API)."""
        for project, ps in state.projects.items():
            if ps.rules is None or not ps.rules.active:
                continue
            backend = self.backend(project)
            path = route_map_path(self.paths, backend)
            entries = route_map(ps)
            text = render_route_map(entries)
            try:
                with open(path) as f:
                    if f.read() == text:
                        continue
            except FileNotFoundError:
                pass
            if self.api.alive():
                self.api.map_replace(path, entries)  # False: not loaded yet; the reload reads the file
            # The file last: it records what HAProxy was given (a failed push is retried).
            self._write_file(path, text)

    @staticmethod
    def _write_file(path: str, text: str) -> None:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def load_state(self) -> RouterState:
        try:
            with open(self._state_file) as f:
                return RouterState.from_json(json.load(f))
        except FileNotFoundError:
            return RouterState()

    def _write_config(self, state: RouterState) -> None:
        for project, ps in state.projects.items():
            if ps.rules is not None and ps.rules.active:
                self._write_file(route_map_path(self.paths, self.backend(project)), render_route_map(route_map(ps)))
        for path, text in (
            (self.paths.hosts_map, render_hosts_map(state, self.base_domain, self.instance)),
            (self.paths.config, render_config(state, bind=self.bind, paths=self.paths, instance=self.instance)),
        ):
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
        check = subprocess.run(
            [self.haproxy_bin, "-c", "-q", "-f", self.paths.config], capture_output=True, text=True, timeout=30
        )
        if check.returncode:
            raise PermanentError(
                f"generated haproxy configuration is invalid: {(check.stderr or check.stdout).strip()[-500:]}"
            )

    # -- process --------------------------------------------------------------------

    def pid(self) -> int | None:
        try:
            with open(self.paths.pidfile) as f:
                pid = int(f.read().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if _running(pid) else None

    def ensure_running(self, *, wait_seconds: float = 10.0) -> None:
        """Start our haproxy (daemon, master-worker) unless its runtime API answers."""
        if self.api.alive():
            return
        with self._locked() as state:
            if self.api.alive():
                return
            self._write_config(state)
            stale = self.pid()
            if stale:  # a master whose worker no longer answers: replace it
                os.kill(stale, signal.SIGTERM)
            for path in (self.paths.admin_socket, self.paths.master_socket):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            proc = subprocess.run(
                [
                    self.haproxy_bin,
                    "-W",
                    "-D",
                    "-q",
                    "-f",
                    self.paths.config,
                    "-p",
                    self.paths.pidfile,
                    "-S",
                    f"{self.paths.master_socket},mode,600",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if proc.returncode:
                raise TransientError(f"haproxy did not start: {proc.stderr.strip()[-500:]}")
            deadline = time.monotonic() + wait_seconds
            while not self.api.alive():
                if time.monotonic() > deadline:
                    raise TransientError(f"haproxy did not answer on {self.paths.admin_socket}")
                time.sleep(0.02)

    def stop(self, *, wait_seconds: float = 10.0) -> None:
        """Stop the master and its workers: soft stop first (in-flight requests finish).

        The soft stop goes to the workers: a master in daemon mode did not pass SIGUSR1
        on here (HAProxy 2.6.12); once its last worker leaves, the master exits too.
        """
        pid = self.pid()
        if pid is None:
            return
        steps = [
            (_children(pid), signal.SIGUSR1, wait_seconds),
            ([pid], signal.SIGTERM, 2.0),
            ([pid], signal.SIGKILL, 2.0),
        ]
        for pids, sig, wait in steps:
            for target in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, sig)
            deadline = time.monotonic() + wait
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not _running(pid):
                break
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.pidfile)

    def _reload(self, state: RouterState, *, wait_seconds: float = 10.0) -> None:
        self._write_config(state)
        old_pid = self.api.info().get("Pid")
        with contextlib.suppress(OSError):
            # The master closes the connection when it re-executes; nothing to read.
            RuntimeAPI(self.paths.master_socket, connect_wait=1).execute("reload")
        deadline = time.monotonic() + wait_seconds
        wanted = {self.backend(p) for p in state.projects}
        while time.monotonic() < deadline:
            with contextlib.suppress(HAProxyError):
                if self.api.info().get("Pid") != old_pid and wanted <= set(self.api.backends()):
                    return
            time.sleep(0.02)
        raise TransientError("haproxy reload did not complete in time")

    # -- routing --------------------------------------------------------------------

    def backend(self, project: str) -> str:
        return backend_name(project, self.instance)

    def ensure_backend(self, project: str, *, check: HealthCheck | None | object = KEEP,
                       rules: RouteRules | None | object = KEEP) -> None:
        """The project's backend exists, with ``check`` as its health check and ``rules`` as
        its routing rules (KEEP: as they are).

        A new backend, a changed check or changed rules need a reload: HAProxy 2.6 creates
        none of them at run time, and dynamic servers only get checks the backend is
        configured for.
        """
        self.ensure_running()
        if isinstance(rules, RouteRules) and not rules.active:
            rules = None
        with self._locked() as state:
            current = state.projects.get(project)
            if (current is not None and (check is KEEP or current.check == check)
                    and (rules is KEEP or current.rules == rules)
                    and self.backend(project) in self.api.backends()):
                return
            ps = state.projects.setdefault(project, ProjectState())
            if check is not KEEP:
                ps.check = check
            if rules is not KEEP:
                ps.rules = rules
            self._reload(state)

    def backend_remove(self, project: str) -> bool:
        """Forget the project: its backend and host mapping (a reload).  False if unknown."""
        with self._locked() as state:
            if project not in state.projects:
                return False
            del state.projects[project]
            if self.pid() is not None:
                self._reload(state)
            else:
                self._write_config(state)
        return True

    def sync_servers(
        self, project: str, revision: str, servers: Mapping[str, tuple[str, int]], *,
        check: HealthCheck | None | object = KEEP,
    ) -> None:
        """Make the revision's servers in the backend exactly ``servers`` (name -> addr).

        New servers join in maintenance (no traffic until set_weights), health-checked on
        the backend's check; a server whose replica was replaced gets its new address and
        keeps its weight.
        """
        self.ensure_backend(project, check=check)
        backend = self.backend(project)
        with self._locked() as state:
            known = state.projects[project].servers
            health = state.projects[project].check
            live = self.api.servers(backend)
            for name, (host, port) in servers.items():
                current = known.get(name)
                if name not in live:
                    self.api.add_server(backend, name, host, port, weight=0, check=health)
                    if current is None:
                        current = known[name] = ServerState(host, port, revision)
                    else:  # the state knew it, haproxy lost it: restore weight and state
                        current.host, current.port = host, port
                    self._apply(backend, name, current)
                elif current is None or (current.host, current.port) != (host, port):
                    self.api.set_addr(backend, name, host, port)
                    if current is None:
                        current = known[name] = ServerState(host, port, revision, state=live[name]["state"])
                    current.host, current.port = host, port
            for name in [n for n, s in known.items() if s.revision == revision]:
                if name not in servers:
                    self._remove(backend, name, known)

    def _apply(self, backend: str, name: str, server: ServerState) -> None:
        if server.state == READY:
            self.api.batch([f"set weight {backend}/{name} {server.weight}", f"set server {backend}/{name} state ready"])
        else:
            self.api.batch([f"set server {backend}/{name} state {server.state}", f"set weight {backend}/{name} 0"])

    def set_weights(self, project: str, weights: Mapping[str, int], *, preview: str | object = KEEP,
                    rules: RouteRules | None | object = KEEP) -> None:
        """Per-server weights; servers not named are drained (in-flight requests finish).

        ``preview``: the revision header/cookie matches reach ("" none; KEEP: as it is);
        ``rules``: the backend's routing rules (KEEP: as they are; a change reloads)."""
        self.ensure_backend(project, rules=rules)
        backend = self.backend(project)
        with self._locked() as state:
            if preview is not KEEP:
                state.projects[project].preview = str(preview)
            known = state.projects[project].servers
            missing = set(weights) - set(known)
            if missing:
                raise PermanentError(f"no such servers in {backend}: {sorted(missing)}")
            # Raise the new servers first, then drain the others: at every instant some
            # server takes new requests.  The runtime has just seen them ready: their health
            # is set up at once rather than after HAProxy's next check (up to `inter` away,
            # with the old servers already drained); HAProxy's checks go on from there.
            health = "; set server {b}/{n} health up" if state.projects[project].check is not None else ""
            up = [
                f"set weight {backend}/{n} {w}; set server {backend}/{n} state ready"
                + health.format(b=backend, n=n)
                for n, w in weights.items()
                if w > 0
            ]
            down = [
                f"set server {backend}/{n} state drain; set weight {backend}/{n} 0"
                for n in known
                if weights.get(n, 0) <= 0 and known[n].state != MAINT
            ]
            self.api.batch(up + down)
            for name, server in known.items():
                weight = weights.get(name, 0)
                if weight > 0:
                    server.weight, server.state = weight, READY
                elif server.state != MAINT:
                    server.weight, server.state = 0, DRAIN

    def remove_servers(self, project: str, names: list[str], *, drain_seconds: float = 0) -> None:
        """Drain, wait up to drain_seconds for sessions to end, then delete the servers."""
        if project not in self.load_state().projects or not self.api.alive():
            return
        backend = self.backend(project)
        with self._locked() as state:
            known = state.projects[project].servers
            live = self.api.servers(backend)
            present = [n for n in names if n in live]
            self.api.batch(
                [
                    f"set server {backend}/{n} state drain; set weight {backend}/{n} 0"
                    for n in present
                    if live[n]["state"] != MAINT
                ]
            )
        deadline = time.monotonic() + drain_seconds
        while present and time.monotonic() < deadline:
            live = self.api.servers(backend)
            if all(live.get(n, {}).get("sessions", 0) == 0 and live.get(n, {}).get("queued", 0) == 0 for n in present):
                break
            time.sleep(0.05)
        with self._locked() as state:
            known = state.projects[project].servers
            for name in names:
                self._remove(backend, name, known)

    def _remove(self, backend: str, name: str, known: dict[str, ServerState]) -> None:
        live = self.api.servers(backend)
        if name in live:
            self.api.set_state(backend, name, MAINT)
            # del server is refused while the server still holds connections; they close
            # quickly once in maintenance.
            deadline = time.monotonic() + 5
            while True:
                try:
                    self.api.del_server(backend, name)
                    break
                except HAProxyError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        known.pop(name, None)

    def adopt(self) -> list[str]:
        """Check what a running HAProxy serves against the saved state and repair it.

        HAProxy outlives the platform; when the platform starts again it reads every
        backend's servers back (`show servers state`) rather than trusting either side.
        Returns what it found wrong and fixed (nothing, normally).
        """
        if not self.api.alive():
            return []
        fixed: list[str] = []
        with self._locked() as state:
            if not {self.backend(p) for p in state.projects} <= set(self.api.backends()):
                self._reload(state)  # a backend is missing: the configuration carries them all
                fixed.append("reloaded HAProxy: a backend was missing")
            for project, ps in state.projects.items():
                backend = self.backend(project)
                live = self.api.servers_state(backend)
                for name, server in ps.servers.items():
                    got = live.get(name)
                    if got is None:
                        self.api.add_server(backend, name, server.host, server.port, weight=0, check=ps.check)
                        self._apply(backend, name, server)
                        fixed.append(f"{backend}/{name} was missing: added")
                        continue
                    if (got["addr"], got["port"]) != (server.host, server.port):
                        self.api.set_addr(backend, name, server.host, server.port)
                        fixed.append(f"{backend}/{name} pointed at {got['addr']}:{got['port']}: corrected")
                    want_weight = server.weight if server.state == READY else 0
                    if got["state"] != server.state or (server.state == READY and got["weight"] != want_weight):
                        self._apply(backend, name, server)
                        fixed.append(f"{backend}/{name} was {got['state']} weight {got['weight']}: "
                                     f"set to {server.state} weight {want_weight}")
                for name in set(live) - set(ps.servers):
                    self._remove(backend, name, {})
                    fixed.append(f"{backend}/{name} is not in the saved state: removed")
        return fixed

    def server_stats(self, project: str) -> dict[str, dict]:
        """Live view of the backend's servers; empty when haproxy or the backend is absent."""
        if not self.api.alive():
            return {}
        try:
            return self.api.servers(self.backend(project))
        except HAProxyError:
            return {}

    def server_counters(self, project: str) -> dict[str, dict]:
        """The backend's per-server traffic counters (see RuntimeAPI.counters); empty when
        haproxy or the backend is absent."""
        if not self.api.alive():
            return {}
        try:
            return self.api.counters(self.backend(project))
        except HAProxyError:
            return {}

    def servers_of(self, project: str, revision: str) -> dict[str, tuple[str, int]]:
        """server name -> (host, port) of one revision, from the saved state."""
        ps = self.load_state().projects.get(project)
        return {n: (s.host, s.port) for n, s in ps.servers.items() if s.revision == revision} if ps else {}

    def revisions_of(self, project: str) -> dict[str, str]:
        """server name -> revision, from the saved state."""
        ps = self.load_state().projects.get(project)
        return {n: s.revision for n, s in ps.servers.items()} if ps else {}
