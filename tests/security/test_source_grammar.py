"""The clone URL, branch and build-file grammar on its own: what is accepted, what is refused.

Hosts are IP literals or resolution is off, so no test here depends on DNS.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from deployments.sources import (
    SourcePolicy,
    SourceRefused,
    branch_validator,
    dockerfile_path_check,
    git_token_validator,
    source_check,
)

PUBLIC = "93.184.216.34"

ACCEPTED = [
    ("https://github.com/acme/shop.git", "https"),
    (f"https://{PUBLIC}:8443/acme/shop.git", "https"),
    ("ssh://git@github.com/acme/shop.git", "ssh"),
    ("ssh://github.com:2222/acme/shop.git", "ssh"),
    ("git@github.com:acme/shop.git", "ssh"),
    ("git@gitlab.example.com:group/sub/project.git", "ssh"),
]

REFUSED = [
    "",
    "-", "--upload-pack=x", "-oProxyCommand=x",
    "ext::sh -c x", "ext::x", "fd::3", "git::https://github.com/a/b",
    "git://github.com/acme/shop.git", "HTTPS://github.com/acme/shop.git", "File:///tmp/x", "ftp://github.com/a/b", "HTTPS://user:pw@github.com/a",
    "http://github.com/acme/shop.git",
    "file:///etc/passwd", "file://localhost/etc", "/srv/git/repo.git", "./repo", "../repo", "repo",
    "https://user:pw@github.com/a/b.git", "https://token@github.com/a/b.git", "https://:pw@github.com/a/b.git",
    "ssh://git:pw@github.com/a/b.git",
    "https://github.com/a b", "https://github.com/a\tb", "https://github.com/a\nb", "https://github.com/a\x00",
    "https://github.com/a\x7f", "https://gïthub.com/a/b",
    "https://github.com", "https://github.com/", "https:///a/b", "https://github.com:0x50/a", "https://github.com:99999/a",
    "https://github.com/a?upload-pack=x", "https://github.com/a#x",
    "ssh://-oProxyCommand=touch/x", "ssh://git@-oProxyCommand=x/a",
    "git@-oProxyCommand=x:a", "git@github.com:-a", "git@github.com:", "-git@github.com:a", "git@github.com:a b",
    "https://" + "a" * 600 + ".com/a",
]


@pytest.mark.parametrize("url, scheme", ACCEPTED)
def test_accepted(url, scheme):
    assert source_check(url, policy=SourcePolicy(), resolve=False).scheme == scheme


@pytest.mark.parametrize("url", REFUSED)
def test_refused(url):
    with pytest.raises(SourceRefused) as info:
        source_check(url, policy=SourcePolicy(allowed_roots=("/tmp",)), resolve=False)
    assert info.value.code == "source_refused" and info.value.message.startswith("clone_url: ")


@pytest.mark.parametrize("branch", ["main", "release/2026.12", "feature-x", "v1.2+build"])
def test_branches_accepted(branch):
    branch_validator(branch)


@pytest.mark.parametrize("branch", ["", "-x", "--orphan", "a..b", "a//b", "a@{1}", ".hidden", "a/.b", "a.lock", "a/",
                                    "a b", "a\x00", "a~1", "a^", "a:b", "a?", "a*", "a[", "@", "a\\b"])
def test_branches_refused(branch):
    with pytest.raises(ValidationError):
        branch_validator(branch)


@pytest.mark.parametrize("path", ["Dockerfile", "docker/app.Dockerfile", "a.b/c_d-e"])
def test_dockerfiles_accepted(path):
    assert dockerfile_path_check(path) == path


@pytest.mark.parametrize("path", ["", "/Dockerfile", "../Dockerfile", "a/../../b", "a/..", "..", "./../x", "-f",
                                  "~/x", "a//b", "a\\..\\b", "a b", "a\x00", "a" * 201])
def test_dockerfiles_refused(path):
    with pytest.raises(SourceRefused):
        dockerfile_path_check(path)


@pytest.mark.parametrize("token", ["a\r\nX-Evil: 1", "a b", "a\x00", "é", "a" * 501])
def test_tokens_that_would_break_a_header_are_refused(token):
    with pytest.raises(ValidationError):
        git_token_validator(token)
