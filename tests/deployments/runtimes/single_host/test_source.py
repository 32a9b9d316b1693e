"""Fetching one commit from a file:// repository, shallow or (fallback) full."""

from __future__ import annotations

import os
import shutil

import pytest

from deployments.errors import PermanentError
from deployments.runtimes.single_host.source import fetch_commit
from tests.single_host_fixtures import GitRepo


@pytest.fixture(autouse=True)
def _git_required():
    if shutil.which("git") is None:
        pytest.skip("git not installed")


def _fetch(url, sha):
    path = fetch_commit(url, sha)
    try:
        with open(os.path.join(path, "NOTE")) as f:
            return f.read()
    finally:
        shutil.rmtree(path)


@pytest.fixture
def two_commits(tmp_path):
    (tmp_path / "src").mkdir()
    repo = GitRepo(str(tmp_path / "src"))
    first = repo.commit_files({"NOTE": "first"})
    repo.commit_files({"NOTE": "second"})
    return repo, first


def test_fetches_a_commit_that_is_not_the_branch_tip(two_commits):
    repo, first = two_commits
    assert _fetch(repo.url, first) == "first"


def test_falls_back_to_a_full_fetch_when_the_server_refuses_the_sha(two_commits, monkeypatch):
    # Protocol v0 servers refuse unadvertised shas unless uploadpack.allowAnySHA1InWant.
    repo, first = two_commits
    from deployments.runtimes.single_host import source

    monkeypatch.setattr(source, "GIT_CONFIG", (*source.GIT_CONFIG, ("protocol.version", "0")))
    assert _fetch(repo.url, first) == "first"


def test_unknown_or_invalid_commits_are_permanent(two_commits):
    repo, _ = two_commits
    with pytest.raises(PermanentError):
        fetch_commit(repo.url, "1" * 40)
    with pytest.raises(PermanentError, match="not a commit sha"):
        fetch_commit(repo.url, "main; rm -rf /")
    with pytest.raises(PermanentError):
        fetch_commit("file:///nonexistent/repo", "1" * 40)


def test_a_commit_missing_from_the_repository_is_named_in_plain_words(two_commits):
    """Not git's "fatal: reference is not a tree": the commit and the repository."""
    repo, _ = two_commits
    with pytest.raises(PermanentError) as caught:
        fetch_commit(repo.url, "1" * 40)
    assert str(caught.value).startswith(f"commit {'1' * 12} is not in {repo.url}"), str(caught.value)
    assert "fatal" not in str(caught.value)


def test_the_checkout_tells_its_commit_message_and_author(tmp_path):
    from deployments.runtimes.single_host.source import commit_describe

    (tmp_path / "src").mkdir()
    repo = GitRepo(str(tmp_path / "src"))
    sha = repo.commit_files({"NOTE": "x"}, message="Fix the login page\n\nLonger body; $(not run) `either`")
    path = fetch_commit(repo.url, sha)
    try:
        message, author = commit_describe(path)
    finally:
        shutil.rmtree(path)
    assert message == "Fix the login page\n\nLonger body; $(not run) `either`"
    assert author == "t"
