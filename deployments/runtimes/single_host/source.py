"""Fetch one commit of a repository into a temporary directory (shallow when allowed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from deployments.errors import PermanentError, TransientError

GIT_TIMEOUT = 300
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
# Messages that mean "this will never work", as opposed to a network blip.
_PERMANENT_HINTS = (
    "not our ref",
    "couldn't find remote ref",
    "does not appear to be a git repository",
    "repository not found",
    "not a valid object name",
    "no such remote ref",
    "reference is not a tree",
    "unable to read tree",
    "authentication failed",
    "did not match any",
)


def _git(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    # Never prompt for credentials: a worker has no terminal.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"git {args[0]} timed out after {GIT_TIMEOUT}s") from exc


def _fail(what: str, proc: subprocess.CompletedProcess) -> None:
    text = (proc.stderr or proc.stdout or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # git's first "fatal:"/"error:" line says what went wrong; the rest is advice.
    reason = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), None)
    msg = f"{what} failed: {reason or (lines[-1] if lines else f'exit {proc.returncode}')}"
    if any(hint in text.lower() for hint in _PERMANENT_HINTS):
        raise PermanentError(msg)
    raise TransientError(msg)


def fetch_commit(clone_url: str, sha: str) -> str:
    """Return a new directory holding ``sha`` of ``clone_url``; the caller removes it."""
    sha = sha.lower()
    if not _SHA.match(sha):
        raise PermanentError(f"not a commit sha: {sha!r}")
    workdir = tempfile.mkdtemp(prefix="switchback-src-")
    try:
        init = _git(["init", "-q", "."], workdir)
        if init.returncode:
            _fail("git init", init)
        fetch = _git(["fetch", "-q", "--depth", "1", clone_url, sha], workdir)
        if fetch.returncode:
            # Servers (file:// ones among them) may refuse to serve an unadvertised sha
            # unless uploadpack.allowAnySHA1InWant is set: fall back to a full fetch.
            fetch = _git(["fetch", "-q", clone_url, "+refs/*:refs/remotes/origin/*"], workdir)
            if fetch.returncode:
                _fail("git fetch", fetch)
            checkout = _git(["checkout", "-q", "--detach", sha], workdir)
        else:
            checkout = _git(["checkout", "-q", "--detach", "FETCH_HEAD"], workdir)
        if checkout.returncode:
            _fail(f"git checkout {sha[:12]}", checkout)
        head = _git(["rev-parse", "HEAD"], workdir).stdout.strip()
        if not head.startswith(sha):
            raise PermanentError(f"fetched commit {head[:12]} is not the requested {sha[:12]}")
        return workdir
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
