"""A tiny process supervisor for `manage.py up`: start children, stop them all cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Supervisor:
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
        # Own process group per child, so stopping it also stops its own workers.
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, start_new_session=True, **kwargs)
        self.children.append((name, proc))
        return proc

    def dead(self) -> list[str]:
        return [name for name, proc in self.children if proc.poll() is not None]

    def stop(self, timeout: float = 15.0) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                # TERM to the leader only: gunicorn and Celery then stop their own workers
                # gracefully; whatever is left when the timeout ends gets KILL, group-wide.
                proc.terminate()
        deadline = time.monotonic() + timeout
        for _name, proc in self.children:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                proc.wait(remaining)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the child's group
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(5)
        self.children.clear()


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]
