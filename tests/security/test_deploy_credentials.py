"""Private repositories through a per-project deploy credential, and where the secret may go.

Before, a token written into clone_url was the only way to a private repository, and
viewers read it in the API, the audit data and the build log (issue 9, item 5). Now the
token is a write-only, encrypted field that git receives as an HTTP header through its
environment; the SSH deploy key is generated here and only its public half is shown. Each
test plants a unique secret and looks for it wherever it must not be.

The HTTPS tests fetch for real from `git http-backend` on 127.0.0.1 behind a handler that
demands the token (tests/security/git_http_server.py). The host is reached by a name only
this process resolves, so a fetch that works also proves git used the checked, pinned
address (http.curloptResolve) rather than its own DNS answer.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import uuid

import pytest
from django.db import connection

from deployments.errors import PermanentError, TransientError
from deployments.models import AuditEntry, Deployment, DeploymentEvent, Membership, Project, Role
from deployments.runtimes.base import GitCredential
from deployments.runtimes.single_host import source as source_module
from deployments.runtimes.single_host.source import fetch_commit
from deployments.services import deployment_request
from deployments.sources import SourcePolicy
from tests.security.git_http_server import GitHttpServer
from tests.single_host_fixtures import GitRepo, free_port

HOST = "private-git.test"


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


@pytest.fixture
def token():
    return f"ghp_{uuid.uuid4().hex}"


@pytest.fixture
def private_repo(tmp_path):
    root = tmp_path / "srv"
    (root / "app.git").mkdir(parents=True)
    repo = GitRepo(str(root / "app.git"))
    sha = repo.commit_files({"NOTE": "private code"})
    return root, sha


@pytest.fixture
def resolve_host(monkeypatch):
    """HOST resolves to 127.0.0.1 in this process only (git's own resolver does not know it)."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == HOST:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def server(private_repo, token, resolve_host):
    root, sha = private_repo
    with GitHttpServer(str(root), authorization=basic(token)) as srv:
        srv.sha = sha
        srv.url = f"http://{HOST}:{srv.port}/app.git"
        yield srv


POLICY = SourcePolicy(allowed_hosts=(HOST,))


@pytest.fixture
def git_calls(monkeypatch):
    """Every git command line and environment the fetch used."""
    calls = []
    real = subprocess.run

    def spy(args, *a, **kw):
        calls.append({"args": list(args), "env": dict(kw.get("env") or {})})
        if " -i " in (kw.get("env") or {}).get("GIT_SSH_COMMAND", ""):
            key = kw["env"]["GIT_SSH_COMMAND"].split(" -i ")[1].split()[0]
            calls[-1]["key_mode"] = stat.S_IMODE(os.stat(key).st_mode)
            calls[-1]["key_file"] = key
            with open(key) as f:
                calls[-1]["key_text"] = f.read()
        return real(args, *a, **kw)

    monkeypatch.setattr(source_module.subprocess, "run", spy)
    return calls


def test_token_fetches_a_private_repository_over_http(server, token, git_calls):
    checkout = fetch_commit(server.url, server.sha, credential=GitCredential(token=token), policy=POLICY)
    try:
        with open(os.path.join(checkout, "NOTE")) as f:
            assert f.read() == "private code"
    finally:
        subprocess.run(["rm", "-rf", checkout])
    assert any(r["authorization"] == basic(token) for r in server.requests)
    # The token went through the environment as a header for this URL, never on a command line.
    for call in git_calls:
        assert token not in " ".join(call["args"]) and basic(token) not in " ".join(call["args"])
    fetch = next(c for c in git_calls if "fetch" in c["args"])
    assert fetch["args"][fetch["args"].index("--") + 1] == server.url
    env = fetch["env"]
    assert env["GIT_ALLOW_PROTOCOL"] == "http" and env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull and env["GIT_CONFIG_NOSYSTEM"] == "1"
    config = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert config[f"http.{server.url}.extraHeader"] == f"Authorization: {basic(token)}"
    assert config["http.curloptResolve"] == f"{HOST}:{server.port}:127.0.0.1"
    assert config["http.followRedirects"] == "false"


def test_a_wrong_token_fails_permanently_and_the_error_never_holds_it(server):
    wrong = f"ghp_{uuid.uuid4().hex}"
    with pytest.raises(PermanentError) as info:
        fetch_commit(server.url, server.sha, credential=GitCredential(token=wrong), policy=POLICY)
    assert wrong not in info.value.message and basic(wrong).split()[1] not in info.value.message
    assert server.requests, "git reached the server"


def test_git_messages_that_quote_the_token_are_scrubbed(server, token):
    # git quotes the URL in its error; here the token is in the path, so the message holds it.
    url = f"http://{HOST}:{server.port}/{token}.git"
    with pytest.raises(PermanentError) as info:
        fetch_commit(url, server.sha, credential=GitCredential(token=token), policy=POLICY)
    assert token not in info.value.message
    assert "[redacted]" in info.value.message


def test_without_the_token_the_private_repository_is_refused(server):
    with pytest.raises(PermanentError):
        fetch_commit(server.url, server.sha, policy=POLICY)
    assert all(r["authorization"] is None for r in server.requests)


def test_the_worker_users_own_credentials_are_never_used(server, token, monkeypatch, tmp_path):
    # A ~/.netrc or global credential helper of the worker's user must not serve a project.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text(f"machine {HOST} login x-access-token password {token}\n")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(PermanentError):
        fetch_commit(server.url, server.sha, policy=POLICY)
    assert all(r["authorization"] is None for r in server.requests)


# --- SSH deploy key ---------------------------------------------------------------------------


@pytest.fixture
def admin_api(api, user, make_project):
    project = make_project(slug="private", repository="acme/private")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return api


def raw_column(name: str, slug: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {name} FROM deployments_project WHERE slug = %s", [slug])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_deploy_key_is_generated_and_only_its_public_half_is_shown(admin_api, tmp_path):
    response = admin_api.post("/api/projects/private/deploy-key/")
    assert response.status_code == 201, response.content
    public = response.json()["public_key"]
    assert public.startswith("ssh-ed25519 ") and public.endswith("switchback-deploy-private")
    assert response.json()["fingerprint"].startswith("SHA256:")
    project = Project.objects.get(slug="private")
    private = project.deploy_key_private
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # The private half is a real OpenSSH key whose public half is the one shown.
    key_file = tmp_path / "k"
    key_file.write_text(private)
    key_file.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == public.split()[:2]
    # Encrypted at rest, never in a response or an audit row.
    stored = raw_column("deploy_key_private", "private")
    assert stored.startswith("fernet:") and "OPENSSH" not in stored
    body = lambda: json.dumps(admin_api.get("/api/projects/private/").json())  # noqa: E731
    for line in private.splitlines()[1:-1]:
        assert line not in body() and line not in json.dumps(list(AuditEntry.objects.values()), default=str)
    assert admin_api.get("/api/projects/private/").json()["deploy_key_public"] == public
    entry = AuditEntry.objects.get(action="project.deploy_key")
    assert set(entry.data) == {"fingerprint", "replaced"}
    # Regenerating replaces it.
    again = admin_api.post("/api/projects/private/deploy-key/").json()["public_key"]
    assert again != public
    assert admin_api.delete("/api/projects/private/deploy-key/").status_code == 204
    assert Project.objects.get(slug="private").deploy_key_private == ""


@pytest.mark.django_db
def test_a_viewer_cannot_generate_or_read_a_private_key(api, user, make_project):
    project = make_project(slug="private", repository="acme/private")
    Membership.objects.create(project=project, user=user, role=Role.VIEWER)
    assert api.post("/api/projects/private/deploy-key/").status_code == 403
    assert api.get("/api/projects/private/deploy-key/").json()["public_key"] == ""


def test_ssh_fetch_uses_the_key_from_a_0600_file_removed_afterwards(git_calls, tmp_path):
    from deployments.services_credentials import deploy_key_generate

    private, _ = deploy_key_generate(comment="t")
    known_hosts = tmp_path / "state" / "known_hosts" / "private"
    # No SSH server runs here: ssh is refused at a closed port; the environment git ran with
    # is what this test reads.
    url = f"ssh://git@127.0.0.1:{free_port()}/acme/private.git"
    with pytest.raises((PermanentError, TransientError)) as info:
        fetch_commit(url, "a" * 40, credential=GitCredential(ssh_private_key=private), known_hosts=str(known_hosts),
                     policy=SourcePolicy(allowed_hosts=("127.0.0.1",)))
    fetch = next(c for c in git_calls if "fetch" in c["args"])
    assert fetch["args"][fetch["args"].index("--") + 1] == url
    env = fetch["env"]
    assert env["GIT_ALLOW_PROTOCOL"] == "ssh" and "SSH_AUTH_SOCK" not in env
    ssh = env["GIT_SSH_COMMAND"]
    for option in ("-F /dev/null", "BatchMode=yes", "IdentitiesOnly=yes", "IdentityAgent=none",
                   "StrictHostKeyChecking=accept-new", f"UserKnownHostsFile={known_hosts}"):
        assert option in ssh
    assert "HostName=127.0.0.1" in ssh and "HostKeyAlias=127.0.0.1" in ssh
    assert fetch["key_mode"] == 0o600 and fetch["key_text"].strip() == private.strip()
    assert not os.path.exists(fetch["key_file"]), "the key file is removed after the fetch"
    assert private.splitlines()[1] not in info.value.message
    assert all(private.splitlines()[1] not in " ".join(c["args"]) for c in git_calls)


def test_without_a_deploy_key_ssh_offers_no_key_of_the_worker(git_calls):
    with pytest.raises((PermanentError, TransientError)):
        fetch_commit(f"ssh://git@127.0.0.1:{free_port()}/acme/private.git", "a" * 40,
                     policy=SourcePolicy(allowed_hosts=("127.0.0.1",)))
    ssh = next(c for c in git_calls if "fetch" in c["args"])["env"]["GIT_SSH_COMMAND"]
    assert "IdentityFile=none" in ssh and " -i " not in ssh


# --- the token through the API, the database, the audit and a failed deployment ---------------


@pytest.mark.django_db
def test_token_is_write_only_encrypted_and_absent_everywhere(admin_api, server, token, settings,
                                                             django_capture_on_commit_callbacks):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "ALLOWED_SOURCE_HOSTS": [HOST]}
    response = admin_api.patch("/api/projects/private/", {"clone_url": server.url, "git_token": token},
                               format="json")
    assert response.status_code == 200, response.content
    assert response.json()["has_git_token"] is True and "git_token" not in response.json()
    stored = raw_column("git_token", "private")
    assert stored.startswith("fernet:") and token not in stored
    assert AuditEntry.objects.get(action="project.update").data["git_token"] == {"changed": True}

    # A deployment of a commit the server lacks: the fetch authenticates, fails, and the
    # failure is recorded; then nothing anywhere holds the token.
    project = Project.objects.get(slug="private")
    deployment = deployment_request(project=project, sha="b" * 40, actor=None)
    from deployments.specs import build_spec_for

    spec = build_spec_for(deployment)
    assert spec.credential.token == token and token not in repr(spec.credential) and "credential" not in repr(spec)
    with pytest.raises(PermanentError) as info:
        fetch_commit(spec.clone_url, spec.sha, credential=spec.credential, policy=POLICY)
    from deployments.engine import rollout_fail

    rollout_fail(deployment=deployment, reason=info.value.message)

    everywhere = json.dumps([
        admin_api.get("/api/projects/private/").json(),
        admin_api.get(f"/api/projects/private/deployments/{deployment.number}/").json(),
        admin_api.get("/api/projects/private/audit/").json(),
        list(AuditEntry.objects.values()), list(DeploymentEvent.objects.values()),
        list(Deployment.objects.values()),
    ], default=str)
    assert token not in everywhere
    assert basic(token).split()[1] not in everywhere


@pytest.mark.django_db
def test_token_with_a_newline_cannot_inject_a_header(admin_api):
    response = admin_api.patch("/api/projects/private/", {"git_token": "abc\r\nX-Evil: 1"}, format="json")
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert Project.objects.get(slug="private").git_token == ""


def test_ssh_connects_to_the_checked_address_not_a_new_dns_answer(git_calls, resolve_host):
    # HOST resolves (in this process, at the check) to 127.0.0.1; ssh itself cannot resolve
    # it, so reaching the closed port proves ssh used the pinned address.
    port = free_port()
    with pytest.raises((PermanentError, TransientError)) as info:
        fetch_commit(f"ssh://git@{HOST}:{port}/acme/private.git", "a" * 40, policy=POLICY)
    ssh = next(c for c in git_calls if "fetch" in c["args"])["env"]["GIT_SSH_COMMAND"]
    assert "HostName=127.0.0.1" in ssh and f"HostKeyAlias={HOST}" in ssh
    assert "Connection refused" in info.value.message


@pytest.mark.django_db
def test_the_migration_moves_a_token_out_of_old_urls_audit_rows_and_logs(make_project):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("deployments.migrations.0008_source_credentials")
    token = f"ghp_{uuid.uuid4().hex}"
    old_url = f"https://x-access-token:{token}@github.com/acme/old.git"
    project = make_project(slug="old", repository="acme/old")
    Project.objects.filter(pk=project.pk).update(clone_url=old_url)
    AuditEntry.objects.create(project=project, action="project.update", actor_name="x",
                              data={"clone_url": {"from": "", "to": old_url}})
    deployment = deployment_request(project=project, sha="c" * 40, actor=None)
    DeploymentEvent.objects.create(deployment=deployment, kind="log", message=f"fetching c from {old_url}")
    Deployment.objects.filter(pk=deployment.pk).update(failure_reason=f"repository '{old_url}' not found")

    migration.move_url_credentials_to_the_token(apps, None)

    project.refresh_from_db()
    assert project.clone_url == "https://github.com/acme/old.git" and project.git_token == token
    assert raw_column("git_token", "old").startswith("fernet:")
    everywhere = json.dumps([list(AuditEntry.objects.values()), list(DeploymentEvent.objects.values()),
                             list(Deployment.objects.values())], default=str)
    assert token not in everywhere and "github.com/acme/old.git" in everywhere
