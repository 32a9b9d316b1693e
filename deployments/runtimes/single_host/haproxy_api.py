"""A small client for HAProxy's Runtime API over its UNIX stats socket.

https://docs.haproxy.org/2.6/management.html#9.3
"""

from __future__ import annotations

import csv
import io
import re
import socket
import time
from collections.abc import Mapping

from deployments.errors import TransientError

from .haproxy_config import DRAIN, MAINT, READY, HealthCheck


class HAProxyError(TransientError):
    """The Runtime API refused a command or could not be reached."""


class RuntimeAPI:
    def __init__(self, socket_path: str, *, timeout: float = 5.0, connect_wait: float = 3.0):
        self.socket_path = socket_path
        self.timeout = timeout
        # During a reload the socket is briefly re-bound; retry connecting this long.
        self.connect_wait = connect_wait

    def execute(self, command: str) -> str:
        """Send one command line (commands may be joined by ';'); return the raw answer."""
        deadline = time.monotonic() + self.connect_wait
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(self.timeout)
                    sock.connect(self.socket_path)
                    sock.sendall(command.encode() + b"\n")
                    chunks = []
                    while chunk := sock.recv(65536):
                        chunks.append(chunk)
                return b"".join(chunks).decode(errors="replace")
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if time.monotonic() >= deadline:
                    raise HAProxyError(f"haproxy runtime API not reachable: {exc}") from exc
                time.sleep(0.02)
            except OSError as exc:
                raise HAProxyError(f"haproxy runtime API error: {exc}") from exc

    def _expect_empty(self, command: str) -> None:
        answer = self.execute(command).strip()
        if answer:
            raise HAProxyError(f"haproxy refused '{command}': {answer}")

    def alive(self) -> bool:
        try:
            saved, self.connect_wait = self.connect_wait, 0
            return "Pid:" in self.execute("show info")
        except HAProxyError:
            return False
        finally:
            self.connect_wait = saved

    def info(self) -> dict[str, str]:
        lines = self.execute("show info").splitlines()
        return dict(line.split(": ", 1) for line in lines if ": " in line)

    def backends(self) -> list[str]:
        lines = self.execute("show backend").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def add_server(
        self, backend: str, server: str, host: str, port: int, *, weight: int = 0, check: HealthCheck | None = None
    ) -> None:
        # Dynamic servers are experimental on 2.6 and start in maintenance, their health
        # checks disabled until "enable health".
        options = f" {check.server_options()}" if check is not None else ""
        answer = self.execute(
            f"experimental-mode on; add server {backend}/{server} {host}:{port} weight {int(weight)}{options}")
        if "New server registered" not in answer:
            raise HAProxyError(f"haproxy refused to add {backend}/{server}: {answer.strip()}")
        if check is not None:
            self._expect_empty(f"enable health {backend}/{server}")

    def del_server(self, backend: str, server: str) -> None:
        answer = self.execute(f"experimental-mode on; del server {backend}/{server}")
        if "Server deleted" not in answer:
            raise HAProxyError(f"haproxy refused to delete {backend}/{server}: {answer.strip()}")

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self._expect_empty(f"set weight {backend}/{server} {int(weight)}")

    def set_state(self, backend: str, server: str, state: str) -> None:
        if state not in (READY, DRAIN, MAINT):
            raise ValueError(state)
        self._expect_empty(f"set server {backend}/{server} state {state}")

    def set_addr(self, backend: str, server: str, host: str, port: int) -> None:
        answer = self.execute(f"set server {backend}/{server} addr {host} port {port}").strip()
        if answer and "changed" not in answer and "no need to change" not in answer:
            raise HAProxyError(f"haproxy refused new address for {backend}/{server}: {answer}")

    def map_replace(self, path: str, entries: Mapping[str, str], *, line_budget: int = 12_000) -> bool:
        """Replace a map's entries atomically: a new version filled, then committed
        (prepare/commit map: a lookup sees the old entries or the new ones, never a mix).
        Few round trips (a weight change waits on them): the additions go in lines of up
        to ``line_budget`` characters, under HAProxy's 16 kB command buffer, the commit with
        the last.  False when HAProxy does not know the map (its backend is not loaded yet)."""
        answer = self.execute(f"prepare map {path}")
        match = re.search(r"New version created:\s*(\d+)", answer)
        if match is None:
            if "nknown map" in answer:
                return False
            raise HAProxyError(f"haproxy refused to prepare map {path}: {answer.strip()}")
        version = match.group(1)
        lines: list[list[str]] = [[]]
        size = 0
        for key, value in sorted(entries.items()):
            command = f"add map @{version} {path} {key} {value}"
            if size + len(command) > line_budget and lines[-1]:
                lines.append([])
                size = 0
            lines[-1].append(command)
            size += len(command) + 2
        lines[-1].append(f"commit map @{version} {path}")
        for commands in lines:
            self.batch(commands)
        return True

    def batch(self, commands: list[str]) -> None:
        """Run several commands that answer nothing on success, in one round trip."""
        if commands:
            self._expect_empty("; ".join(commands))

    def show_stat(self, backend: str | None = None) -> list[dict[str, str]]:
        # "show stat <proxy> 4 -1": servers only (type 4) of one proxy.
        command = f"show stat {backend} 4 -1" if backend else "show stat"
        text = self.execute(command)
        if not text.startswith("# "):
            raise HAProxyError(f"unexpected answer to '{command}': {text.strip()[:200]}")
        return list(csv.DictReader(io.StringIO(text[2:])))

    def servers(self, backend: str) -> dict[str, dict]:
        """name -> {weight (effective), state, sessions, addr} for a backend's servers."""
        result = {}
        for row in self.show_stat(backend):
            if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            status = (row.get("status") or "").upper()
            state = MAINT if "MAINT" in status else DRAIN if "DRAIN" in status else READY
            weight = int(row.get("weight") or 0)
            result[row["svname"]] = {
                "weight": weight if state == READY else 0,
                "state": state,
                "sessions": int(row.get("scur") or 0),
                "queued": int(row.get("qcur") or 0),
                "addr": row.get("addr", ""),
            }
        return result

    def counters(self, backend: str) -> dict[str, dict]:
        """name -> {requests, errors, rtime_ms} for a backend's servers, from `show stat`.

        req_tot and hrsp_5xx are cumulative per server (since the worker started, or the
        dynamic server was added); eresp counts responses the server broke off, which the
        client sees as an error too.  rtime is HAProxy's mean response time over the
        server's last 1024 requests, in ms (0 until it served any).
        """
        result = {}
        for row in self.show_stat(backend):
            if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            result[row["svname"]] = {
                "requests": int(row.get("req_tot") or 0),
                "errors": int(row.get("hrsp_5xx") or 0) + int(row.get("eresp") or 0),
                "rtime_ms": int(row.get("rtime") or 0),
            }
        return result

    def servers_state(self, backend: str) -> dict[str, dict]:
        """name -> {addr, port, weight (configured), state} from `show servers state`: what
        HAProxy holds for each server, read back when the platform adopts a running HAProxy."""
        text = self.execute(f"show servers state {backend}")
        lines = text.splitlines()
        header = next((line[2:].split() for line in lines if line.startswith("# ")), None)
        if header is None:
            raise HAProxyError(f"unexpected answer to 'show servers state {backend}': {text.strip()[:200]}")
        result = {}
        for line in lines:
            fields = line.split()
            if len(fields) < len(header) or line.startswith("#"):
                continue
            row = dict(zip(header, fields, strict=False))
            if row.get("be_name") != backend:
                continue
            admin = int(row.get("srv_admin_state") or 0)
            # Admin state bits: 0x01 forced maintenance, 0x08 forced drain (HAProxy's server.h).
            state = MAINT if admin & 0x01 else DRAIN if admin & 0x08 else READY
            result[row["srv_name"]] = {
                "addr": row.get("srv_addr", ""),
                "port": int(row.get("srv_port") or 0),
                "weight": int(row.get("srv_uweight") or 0),
                "state": state,
            }
        return result
