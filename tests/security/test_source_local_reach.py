"""Attack: a clone_url that makes the worker read the host's disk or reach inside its network.

`file:///any/path` built from any folder on the host (the platform's own source included)
and `http://127.0.0.1:<port>/` sent requests inside the host (issue 9, item 3). Each test
plants the attack against a real listener or a real folder and asserts that it is refused
and that nothing was read or requested, unless the operator allowed exactly that root or host.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from deployments.errors import PermanentError, TransientError
from deployments.models import Membership, Project, Role
from deployments.runtimes.single_host.source import fetch_commit
from deployments.sources import SourcePolicy, SourceRefused, source_check
from tests.single_host_fixtures import GitRepo

REPO_ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections (and answers nothing useful)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def admin_api(api, user, make_project):
    project = make_project(slug="victim", repository="acme/victim")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return api


LOCAL_URLS = [
    "http://127.0.0.1:{port}/repo.git",
    "https://127.0.0.1:{port}/repo.git",
    "https://localhost:{port}/repo.git",
    "https://[::1]:{port}/repo.git",
    "https://0x7f.1:{port}/repo.git",
    "https://2130706433:{port}/repo.git",
    "https://[::ffff:127.0.0.1]:{port}/repo.git",
    "ssh://git@127.0.0.1:{port}/repo.git",
    "git@127.0.0.1:repo.git",
    "https://169.254.169.254/latest/meta-data",
    "https://10.0.0.1/repo.git",
    "https://0.0.0.0:{port}/repo.git",
]


@pytest.mark.django_db
@pytest.mark.parametrize("template", LOCAL_URLS)
def test_api_refuses_local_hosts_and_nothing_is_requested(admin_api, listener, template):
    url = template.format(port=listener.port)
    response = admin_api.patch("/api/projects/victim/", {"clone_url": url}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid" and "SWITCHBACK_ALLOWED_SOURCE_HOSTS" in body["message"]
    assert Project.objects.get(slug="victim").clone_url == ""
    assert listener.connections == 0


@pytest.mark.parametrize("template", LOCAL_URLS)
def test_fetch_refuses_local_hosts_permanently_before_connecting(listener, template):
    with pytest.raises(SourceRefused):
        fetch_commit(template.format(port=listener.port), "a" * 40, policy=SourcePolicy())
    assert listener.connections == 0


def test_a_host_the_operator_lists_is_reached(listener):
    # Allowed: git really connects (and fails: the listener speaks no HTTP), transiently.
    policy = SourcePolicy(allowed_hosts=("127.0.0.1",))
    with pytest.raises((TransientError, PermanentError)) as info:
        fetch_commit(f"http://127.0.0.1:{listener.port}/repo.git", "a" * 40, policy=policy)
    assert not isinstance(info.value, SourceRefused)
    assert listener.connections >= 1


def test_operator_networks_allow_only_their_addresses():
    policy = SourcePolicy(allowed_hosts=("10.1.0.0/16",))
    assert source_check("https://10.1.2.3/r.git", policy=policy).addresses == ("10.1.2.3",)
    with pytest.raises(SourceRefused):
        source_check("https://10.2.0.1/r.git", policy=policy)


@pytest.mark.django_db
def test_api_accepts_a_listed_host(admin_api, settings, listener):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_SOURCE_HOSTS": ["127.0.0.1"]}
    url = f"http://127.0.0.1:{listener.port}/repo.git"
    response = admin_api.patch("/api/projects/victim/", {"clone_url": url}, format="json")
    assert response.status_code == 200, response.content
    assert Project.objects.get(slug="victim").clone_url == url


def test_dns_that_changes_after_the_save_is_checked_again_at_fetch(monkeypatch, listener):
    # Saved while the name pointed outside; by the fetch it points at the host itself.
    answers = {"rebind.example": "93.184.216.34"}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    url = f"https://rebind.example:{listener.port}/repo.git"
    assert source_check(url, policy=SourcePolicy()).addresses == ("93.184.216.34",)
    answers["rebind.example"] = "127.0.0.1"
    with pytest.raises(SourceRefused, match="loopback"):
        fetch_commit(url, "a" * 40, policy=SourcePolicy())
    assert listener.connections == 0


# --- file:// ------------------------------------------------------------------------------


@pytest.fixture
def platform_repo_copy(tmp_path_factory):
    """A git repository outside the allowed roots, standing in for the platform's own source."""
    outside = Path(REPO_ROOT) / "var" / f"test-outside-{os.getpid()}"
    outside.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(str(outside))
    sha = repo.commit_files({"SECRET_KEY": "the-platform-secret-key"})
    yield repo, sha
    shutil.rmtree(outside, ignore_errors=True)


@pytest.mark.django_db
def test_api_refuses_file_urls_outside_the_allowed_roots(admin_api, platform_repo_copy, settings, tmp_path):
    repo, _ = platform_repo_copy
    # The allowed root is this test's own folder: the test settings allow the whole temporary
    # folder, which holds the checkout itself when it runs from a clone under /tmp.
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_SOURCE_ROOTS": [str(tmp_path)]}
    for url in (repo.url, f"file://{REPO_ROOT}", "file:///etc", "file:///tmp/../etc", "file://localhost/etc",
                f"file://{REPO_ROOT}/../../tmp/x%2f..", "file://evil.example/tmp/x"):
        response = admin_api.patch("/api/projects/victim/", {"clone_url": url}, format="json")
        assert response.status_code == 400, (url, response.content)
        assert response.json()["error"] == "invalid"
    assert Project.objects.get(slug="victim").clone_url == ""


def test_fetch_refuses_a_repository_outside_the_allowed_roots(platform_repo_copy, tmp_path):
    repo, sha = platform_repo_copy
    with pytest.raises(SourceRefused):
        fetch_commit(repo.url, sha, policy=SourcePolicy(allowed_roots=(str(tmp_path),)))
    # The same fetch from an allowed root works: the refusal is the policy, not git.
    checkout = fetch_commit(repo.url, sha, policy=SourcePolicy(allowed_roots=(repo.path,)))
    try:
        assert (Path(checkout) / "SECRET_KEY").read_text() == "the-platform-secret-key"
    finally:
        shutil.rmtree(checkout)


def test_a_symlink_inside_an_allowed_root_does_not_lead_out(platform_repo_copy, tmp_path):
    repo, sha = platform_repo_copy
    (tmp_path / "link").symlink_to(repo.path)
    with pytest.raises(SourceRefused):
        fetch_commit(f"file://{tmp_path}/link", sha, policy=SourcePolicy(allowed_roots=(str(tmp_path),)))


def test_without_any_allowed_root_file_urls_are_refused(tmp_path):
    repo = GitRepo(str(tmp_path))
    sha = repo.commit_files({"a": "b"})
    with pytest.raises(SourceRefused, match="SWITCHBACK_ALLOWED_SOURCE_ROOTS"):
        fetch_commit(repo.url, sha, policy=SourcePolicy())
