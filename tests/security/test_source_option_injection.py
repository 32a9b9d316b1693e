"""Attack: a project admin sets clone_url to a git option that runs a command as the worker.

`--upload-pack=sh -c 'touch /tmp/x'; :` given to `git fetch` as the repository runs the
command (issue 9, item 1). Each test plants the attack and asserts nothing ran: the API
answers 400 JSON and writes nothing, and the fetch refuses the URL permanently (no retry
that would run it again). The last tests take the URL check away and show that git's own
hardening (`--` before the URL, GIT_ALLOW_PROTOCOL) still runs nothing.
"""

from __future__ import annotations

import pytest

from deployments.errors import PermanentError, TransientError
from deployments.models import AuditEntry, Membership, Project, Role
from deployments.runtimes.single_host import source as source_module
from deployments.runtimes.single_host.source import fetch_commit
from deployments.sources import Source, SourceRefused


def attacks(marker) -> list[str]:
    return [
        f"--upload-pack=sh -c 'touch {marker}'; :",
        f"--upload-pack=touch${{IFS}}{marker}",
        f"-uupload-pack=touch {marker}",
        f"ext::sh -c touch% {marker}",
        f"ext::touch${{IFS}}{marker}",
        f"ssh://-oProxyCommand=touch${{IFS}}{marker}/x",
        f"git@-oProxyCommand=touch{marker}:x",
        f"https://github.com/a/b.git\n--upload-pack=touch {marker}",
        f"https://github.com/a/b.git\x00--upload-pack=touch {marker}",
    ]


@pytest.fixture
def admin_api(api, user, make_project):
    """A project admin (not staff): the attacker of issue 9."""
    project = make_project(slug="victim", repository="acme/victim")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return api


@pytest.mark.django_db
@pytest.mark.parametrize("index", range(9))
def test_api_refuses_option_injection_with_400_json_and_writes_nothing(admin_api, tmp_path, index):
    marker = tmp_path / "pwned"
    attack = attacks(marker)[index]
    before = AuditEntry.objects.count()
    response = admin_api.patch("/api/projects/victim/", {"clone_url": attack}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    if "\x00" in attack:  # the API's parser refuses a NUL anywhere in a body, before any field
        assert body["error"] == "parse_error" and "NUL" in body["message"]
    else:
        assert body["error"] == "invalid" and "clone_url" in body["message"]
    assert Project.objects.get(slug="victim").clone_url == ""
    assert AuditEntry.objects.count() == before
    assert not marker.exists()


@pytest.mark.django_db
def test_project_create_refuses_it_too(api, user, tmp_path):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    marker = tmp_path / "pwned"
    response = api.post("/api/projects/", {"slug": "evil", "repository": "acme/evil",
                                           "clone_url": attacks(marker)[0]}, format="json")
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert not Project.objects.filter(slug="evil").exists()


@pytest.mark.parametrize("index", range(9))
def test_fetch_refuses_it_permanently_and_runs_nothing(tmp_path, index):
    # A URL stored before validation existed (or written around it) reaches the fetch.
    marker = tmp_path / "pwned"
    with pytest.raises(PermanentError) as info:
        fetch_commit(attacks(marker)[index], "a" * 40)
    assert not isinstance(info.value, TransientError)
    assert info.value.code == "source_refused"
    assert not marker.exists()


@pytest.fixture
def no_url_check(monkeypatch):
    """Take deployments.sources' check away: only git's own hardening is left."""

    def accept_anything(url, policy=None, resolve=True):
        return Source(url=url, scheme="https")

    monkeypatch.setattr(source_module, "source_check", accept_anything)


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_without_the_url_check_git_still_runs_nothing(no_url_check, tmp_path, index):
    # GIT_ALLOW_PROTOCOL names only the checked URL's protocol (ext:: and local paths are not
    # transports git will use) and "--" makes an option-looking URL a repository name.
    marker = tmp_path / "pwned"
    with pytest.raises((PermanentError, TransientError)):
        fetch_commit(attacks(marker)[index], "a" * 40)
    assert not marker.exists()


def test_refusal_messages_never_repeat_the_url():
    # The URL may hold a secret (a token in it is refused, and must not be echoed back).
    with pytest.raises(SourceRefused) as info:
        fetch_commit("https://x-access-token:ghp_s3cr3tvalue@github.com/a/b.git", "a" * 40)
    assert "ghp_s3cr3tvalue" not in info.value.message


def test_double_dash_alone_keeps_an_option_a_repository_name(monkeypatch, tmp_path):
    # Even where local paths are allowed (a file:// root), "--" stops git reading the URL as
    # --upload-pack: without it, this runs the command.
    monkeypatch.setattr(source_module, "source_check", lambda url, policy=None, resolve=True:
                        Source(url=url, scheme="file"))
    marker = tmp_path / "pwned"
    with pytest.raises((PermanentError, TransientError)):
        fetch_commit(attacks(marker)[0], "a" * 40)
    assert not marker.exists()
