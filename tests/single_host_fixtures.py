"""Real Podman (Docker Engine API) and real HAProxy for the single-host tests (a pytest plugin).

One podman service on a socket in a temp dir and one haproxy on a free loopback port serve
the whole session; both are stopped at the end, with every container the tests made.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest

from deployments.runtimes.single_host import SingleHostRuntime
from deployments.runtimes.single_host.containers import list_replicas, remove_container
from deployments.runtimes.single_host.engine_api import connect

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLES = os.path.join(REPO_ROOT, "examples")


def _missing(*binaries: str) -> list[str]:
    return [b for b in binaries if shutil.which(b) is None and not os.path.exists(f"/usr/sbin/{b}")]


def _skip_unless(*binaries: str) -> None:
    missing = _missing(*binaries)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (run scripts/install-system-deps.sh)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def session_dir():
    # Short path: UNIX socket paths are limited to about 107 bytes.
    path = tempfile.mkdtemp(prefix="sb-rt-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def engine(session_dir):
    _skip_unless("podman")
    handle = connect(f"unix://{session_dir}/podman.sock", start_service=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def project_prefix():
    # Unique per session: runs on the same host never see each other's containers.
    return f"t{uuid.uuid4().hex[:6]}"


def _quietly(action) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass


def _listed(listing) -> list:
    try:
        return listing()
    except Exception:  # noqa: BLE001 - best effort cleanup
        return []


@pytest.fixture(scope="session")
def runtime(engine, session_dir, project_prefix):
    _skip_unless("haproxy")
    rt = SingleHostRuntime(
        engine.url, state_dir=os.path.join(session_dir, "state"), haproxy_bind=f"127.0.0.1:{free_port()}"
    )
    rt.router.ensure_running()
    yield rt
    # Best effort, each step on its own: a shared engine under load (other sessions build
    # and remove images meanwhile) may fail one listing without stopping the others.
    for container in _listed(lambda: list_replicas(engine.client)):
        if container.labels.get("switchback.project", "").startswith(project_prefix):
            # Through the runtime's removal, which rides out Podman's spurious "shm busy".
            _quietly(lambda c=container: remove_container(c, stop_timeout=0))
    for network in _listed(lambda: engine.client.networks.list(filters={"label": "switchback.project"})):
        if (network.attrs.get("Labels") or {}).get("switchback.project", "").startswith(project_prefix):
            _quietly(network.remove)
    for image in _listed(lambda: engine.client.images.list(filters={"label": "switchback.project"})):
        if image.labels.get("switchback.project", "").startswith(project_prefix):
            for tag in image.tags or [image.id]:
                _quietly(lambda t=tag: engine.client.images.remove(t, force=True))
    rt.close(stop_router=True)


class GitRepo:
    """A throwaway git repository served by file:// URL."""

    def __init__(self, path: str):
        self.path = path
        self.url = f"file://{path}"
        self._git("init", "-q", "-b", "main")

    def _git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
        return subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit_example(self, example: str, note: str = "") -> str:
        """Replace the tree with examples/<example> (+ a note file) and commit; return sha."""
        for entry in os.listdir(self.path):
            if entry != ".git":
                target = os.path.join(self.path, entry)
                shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)
        shutil.copytree(os.path.join(EXAMPLES, example), self.path, dirs_exist_ok=True)
        with open(os.path.join(self.path, "NOTE"), "w") as f:
            f.write(note or uuid.uuid4().hex)
        self._git("add", "-A")
        self._git("commit", "-q", "-m", f"{example} {note}")
        return self._git("rev-parse", "HEAD")

    def commit_files(self, files: dict[str, str], message: str = "files") -> str:
        for name, text in files.items():
            with open(os.path.join(self.path, name), "w") as f:
                f.write(text)
        self._git("add", "-A")
        self._git("commit", "-q", "-m", message)
        return self._git("rev-parse", "HEAD")


@pytest.fixture
def git_repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    return GitRepo(str(path))
