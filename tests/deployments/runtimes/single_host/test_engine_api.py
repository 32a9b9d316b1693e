"""Connecting to the container engine: the API version is read from /_ping, never /version.

Podman answers GET /version in about 250 ms (it gathers host information), and every
process paid it on its first rollout step or rollback: a cold rollback handled by a fresh
worker took 250 ms longer.  /_ping's API-Version header carries the same version.
"""

from __future__ import annotations

import os
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler

import docker.constants
import pytest

from deployments.runtimes.single_host.engine_api import api_version_of, connect


class _Engine(BaseHTTPRequestHandler):
    """An engine that announces a version on /_ping and records what it is asked."""

    announced: str | None = "1.47"
    asked: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.asked.append(self.path)
        body = b"OK" if self.path == "/_ping" else b"{}"
        self.send_response(200)
        if self.announced:
            self.send_header("API-Version", self.announced)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def recording_engine():
    folder = tempfile.mkdtemp(prefix="sb-ea-")
    path = os.path.join(folder, "engine.sock")

    class Handler(_Engine):
        asked: list[str] = []

        def address_string(self):  # a UNIX socket has no client address
            return "local"

    server = _UnixServer(path, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"unix://{path}", Handler
    server.shutdown()
    server.server_close()
    os.unlink(path)
    os.rmdir(folder)


def test_the_version_comes_from_the_ping_and_version_is_never_asked(recording_engine):
    url, handler = recording_engine
    handle = connect(url)
    try:
        assert handler.asked == ["/_ping"]
        # 1.47 is newer than the SDK speaks: the SDK's own version is used.
        assert handle.client.api._version == docker.constants.DEFAULT_DOCKER_API_VERSION
    finally:
        handle.stop()


def test_an_older_engine_is_spoken_to_in_its_own_version(recording_engine):
    url, handler = recording_engine
    handler.announced = "1.41"
    handle = connect(url)
    try:
        handle.client.api.get(handle.client.api._url("/info"))
        assert handler.asked == ["/_ping", "/v1.41/info"]
    finally:
        handle.stop()


@pytest.mark.parametrize(
    ("announced", "spoken"),
    [
        ("1.41", "1.41"),  # Podman 4
        ("1.44", "1.44"),
        ("1.51", docker.constants.DEFAULT_DOCKER_API_VERSION),  # newer than the SDK
        (None, docker.constants.MINIMUM_DOCKER_API_VERSION),  # a server too old to say
        ("", docker.constants.MINIMUM_DOCKER_API_VERSION),
    ],
)
def test_the_older_of_the_two_versions_is_spoken(announced, spoken):
    assert api_version_of(announced) == spoken


def test_a_real_podman_is_spoken_to_in_the_version_it_announces(engine):
    client = engine.client
    announced = client.api.get(client.api._url("/_ping", versioned_api=False)).headers["API-Version"]
    assert client.api._version == api_version_of(announced)
    assert client.ping()
    assert isinstance(client.containers.list(all=True, filters={"label": "switchback.test.none=1"}), list)


def test_nothing_answering_is_a_retriable_error():
    from deployments.errors import TransientError

    with pytest.raises(TransientError, match="not reachable"):
        connect("unix:///nonexistent/sb-engine.sock")
