"""Connect to a Docker Engine API: Docker itself, or Podman's compatible service.

Podman has no daemon; ``podman system service`` serves the Docker API on a UNIX socket.
When asked, we start one ourselves, with BUILDAH_ISOLATION=chroot because builds cannot
use the default OCI isolation on these hosts (see docs/ENVIRONMENT notes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass

import docker
import docker.constants
import docker.errors
import docker.utils
import requests.exceptions

from deployments.errors import TransientError

# The API version is negotiated with whatever answers: the Docker SDK's default (1.45) is
# newer than Podman 4's compat layer (1.41), and Docker 29 refuses versions below 1.44.
# docker-py's own negotiation ("auto") asks GET /version, which Podman answers in about
# 250 ms (it gathers host information); GET /_ping carries the same version in its
# API-Version header and answers in a few.  Every process that connects pays this once,
# on its first rollout step or rollback (docs/benchmarks.md, stop 20).
SDK_API_VERSION = docker.constants.DEFAULT_DOCKER_API_VERSION


@dataclass
class EngineHandle:
    client: docker.DockerClient
    url: str
    process: subprocess.Popen | None = None  # the podman service we started, if any

    def stop(self) -> None:
        """Close the client and stop the service if we started it."""
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


def default_url() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///run/podman/podman.sock")


def api_version_of(server: str | None) -> str:
    """The version to speak to a server that announces ``server``: the older of the two."""
    if not server:  # a server too old to say: the SDK's minimum
        return docker.constants.MINIMUM_DOCKER_API_VERSION
    try:
        older = docker.utils.version_lt(server, SDK_API_VERSION)
    except (ValueError, TypeError, AttributeError):
        return docker.constants.MINIMUM_DOCKER_API_VERSION
    return server if older else SDK_API_VERSION


def _try_client(url: str, timeout: float) -> docker.DockerClient | None:
    try:
        # The version does not matter for the ping, which is unversioned.
        probe = docker.APIClient(base_url=url, version=docker.constants.MINIMUM_DOCKER_API_VERSION, timeout=timeout)
        try:
            response = probe.get(f"{probe.base_url}/_ping")
            response.raise_for_status()
        finally:
            probe.close()
        version = api_version_of(response.headers.get("API-Version"))
        return docker.DockerClient(base_url=url, version=version, timeout=timeout)
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return None


def connect(
    url: str | None = None, *, start_service: bool = False, wait_seconds: float = 20.0, request_timeout: float = 300.0
) -> EngineHandle:
    """Return a client for the engine at ``url``; optionally start podman's service there.

    ``start_service`` only applies to ``unix://`` URLs.  The returned handle owns the
    process it started; call ``handle.stop()`` to end it.
    """
    url = url or default_url()
    client = _try_client(url, request_timeout)
    if client is not None:
        return EngineHandle(client=client, url=url)
    if not (start_service and url.startswith("unix://")):
        raise TransientError(f"container engine not reachable at {url}")

    podman = shutil.which("podman")
    if podman is None:
        raise TransientError("container engine not reachable and podman is not installed")
    socket_path = url[len("unix://") :]
    os.makedirs(os.path.dirname(socket_path) or ".", exist_ok=True)
    if os.path.exists(socket_path):
        os.unlink(socket_path)  # a stale socket from a dead service
    env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
    log = open(socket_path + ".log", "ab")  # noqa: SIM115 - the child keeps it open
    process = subprocess.Popen(
        [podman, "system", "service", "--time=0", url],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # a Ctrl-C in the caller's terminal must not kill it midway
    )
    log.close()
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TransientError(f"podman system service exited with code {process.returncode}; see {socket_path}.log")
        if os.path.exists(socket_path):
            client = _try_client(url, request_timeout)
            if client is not None:
                return EngineHandle(client=client, url=url, process=process)
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise TransientError(f"podman system service did not answer at {url} in {wait_seconds}s")
