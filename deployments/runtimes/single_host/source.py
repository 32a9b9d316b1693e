"""Fetch one commit of a repository into a temporary directory (shallow when allowed).

The clone URL is a project admin's input and git runs as the worker's user, so:

- the URL is checked again here (``deployments.sources``: form, host, the operator's
  allow-lists, DNS now), and git gets it after ``--``, where it cannot be an option;
- ``GIT_ALLOW_PROTOCOL`` names the one protocol that URL uses (no ``ext::``, no ``file://``
  unless the operator allowed that folder);
- git reads no system or global config (no credential helpers, ``insteadOf`` or filters
  of the worker's user), runs no hooks, never prompts, follows no redirects;
- the connection is pinned to the addresses just checked (``http.curloptResolve`` for
  http(s), ``HostName`` with ``HostKeyAlias`` for ssh), so a DNS answer that changes after
  the check cannot point git inside the host;
- a deploy credential goes in through the environment (an ``http.<url>.extraHeader`` for
  a token, a 0600 key file named in ``GIT_SSH_COMMAND`` for an SSH key), never in the URL
  or the command line, and is scrubbed from every message.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from deployments.errors import PermanentError, TransientError
from deployments.runtimes.base import GitCredential
from deployments.sources import Source, SourcePolicy, source_check

GIT_TIMEOUT = 300
REDACTED = "[redacted]"
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
    "terminal prompts disabled",
    "could not read username",
    "permission denied (publickey",
    "host key verification failed",
    "not allowed",
    "unsupported protocol",
    "unable to update url base from redirection",
)


# Every git call's own config (git reads no other): no hooks, no fsmonitor, no redirects,
# and no protocol but the one the checked URL uses.
GIT_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("http.followRedirects", "false"),
    ("protocol.allow", "never"),
)


def _basic_auth(token: str) -> str:
    # GitHub and GitLab take a token as the password of HTTP basic auth; the user name is free.
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def _scrubber(credential: GitCredential | None):
    secrets: list[str] = []
    if credential is not None:
        secrets += credential.secrets()
        if credential.token:
            secrets.append(_basic_auth(credential.token))
        # A key's lines, in case a tool quotes part of it.
        secrets += [line for line in credential.ssh_private_key.splitlines() if len(line) >= 16
                    and not line.startswith("-----")]

    def scrub(text: str) -> str:
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    return scrub


def git_environment(source: Source, *, credential: GitCredential | None, private_dir: str,
                    known_hosts: str = "") -> dict[str, str]:
    """The whole environment git runs with: nothing inherited but PATH."""
    config: list[tuple[str, str]] = [*GIT_CONFIG, (f"protocol.{source.scheme}.allow", "always")]
    if source.scheme in ("https", "http") and source.addresses:
        # Pin to what deployments.sources checked: DNS cannot change the answer after the check.
        addresses = ",".join(f"[{a}]" if ":" in a else a for a in source.addresses)
        config.append(("http.curloptResolve", f"{source.host}:{source.port}:{addresses}"))
    if credential and credential.token and source.scheme in ("https", "http"):
        # Scoped to this URL; curl drops custom auth headers on redirects to other hosts, and
        # redirects are off anyway.
        config.append((f"http.{source.url}.extraHeader", f"Authorization: Basic {_basic_auth(credential.token)}"))
    ssh = ["ssh", "-F", os.devnull, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
           "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=accept-new",
           "-o", f"UserKnownHostsFile={known_hosts or os.path.join(private_dir, 'known_hosts')}"]
    if source.scheme == "ssh" and source.addresses:
        # Pin ssh to the checked address too; host keys stay filed under the host's name.
        ssh += ["-o", f"HostName={source.addresses[0]}", "-o", f"HostKeyAlias={source.host}"]
    if credential and credential.ssh_private_key and source.scheme == "ssh":
        key_file = os.path.join(private_dir, "deploy_key")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(credential.ssh_private_key.rstrip("\n") + "\n")
        ssh += ["-i", key_file]
    else:
        # Never offer the worker's own keys (~/.ssh/id_*) to a host a project admin chose.
        ssh += ["-o", "IdentityFile=none"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": private_dir,  # no ~/.netrc, ~/.gitconfig or ~/.ssh of the worker's user
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": source.scheme,
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_SSH_VARIANT": "ssh",
        "GIT_SSH_COMMAND": shlex.join(ssh),
        "GIT_CONFIG_COUNT": str(len(config)),
    }
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _git(args: list[str], *, cwd: str, env: dict[str, str], scrub) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"git {args[0]} timed out after {GIT_TIMEOUT}s") from exc
    return subprocess.CompletedProcess(proc.args, proc.returncode, scrub(proc.stdout or ""),
                                       scrub(proc.stderr or ""))


def _fail(what: str, proc: subprocess.CompletedProcess) -> None:
    text = (proc.stderr or proc.stdout or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # git's first "fatal:"/"error:" line says what went wrong; the rest is advice.
    reason = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), None)
    # ssh says why before git's generic "Could not read from remote repository".
    ssh_says = next((ln for ln in lines if ln.startswith("ssh:")), None)
    if ssh_says and reason:
        reason = f"{ssh_says} ({reason})"
    msg = f"{what} failed: {reason or (lines[-1] if lines else f'exit {proc.returncode}')}"
    lowered = text.lower()
    if any(hint in lowered for hint in _PERMANENT_HINTS) or re.search(r"repository '[^']*' not found", lowered):
        raise PermanentError(msg, code="source_failed")
    raise TransientError(msg)


# git's words for "that commit is not in what was fetched".
_MISSING_COMMIT_HINTS = ("reference is not a tree", "not a valid object name", "did not match any",
                         "unable to read tree", "not our ref", "no such remote ref", "bad object")
COMMIT_MESSAGE_MAX_CHARS = 2000


def _fail_missing_commit(what: str, proc: subprocess.CompletedProcess, *, sha: str, url: str) -> None:
    """git's raw "fatal: reference is not a tree" becomes what a person can act on."""
    text = (proc.stderr or proc.stdout or "").lower()
    if any(hint in text for hint in _MISSING_COMMIT_HINTS):
        raise PermanentError(f"commit {sha[:12]} is not in {url} (was it pushed? is the sha complete and "
                             "from this repository?)", code="source_failed")
    _fail(what, proc)


def commit_describe(workdir: str) -> tuple[str, str]:
    """(message, author) of the checkout's HEAD: plain data for the history, never run."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C.UTF-8"}
    try:
        proc = subprocess.run(["git", "log", "-1", "--no-show-signature", "--format=%an%x00%B", "HEAD", "--"],
                              cwd=workdir, capture_output=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, OSError):
        return "", ""
    if proc.returncode:
        return "", ""
    author, _, message = proc.stdout.decode("utf-8", errors="replace").partition("\0")
    return message.strip()[:COMMIT_MESSAGE_MAX_CHARS], author.strip()[:200]


def fetch_commit(clone_url: str, sha: str, *, credential: GitCredential | None = None,
                 known_hosts: str = "", policy: SourcePolicy | None = None) -> str:
    """Return a new directory holding ``sha`` of ``clone_url``; the caller removes it.

    ``known_hosts``: the project's own file (StrictHostKeyChecking=accept-new: the first
    key a host shows is trusted and kept, a changed one is refused); empty means a
    throwaway one. ``policy``: the operator's allow-lists (default: the settings).
    """
    if not isinstance(sha, str) or not _SHA.match(sha.lower()):
        raise PermanentError("not a commit sha: give 7 to 64 hexadecimal characters", code="source_refused")
    sha = sha.lower()
    source = source_check(clone_url, policy=policy)  # SourceRefused is permanent; DNS down is transient
    scrub = _scrubber(credential)
    if known_hosts:
        os.makedirs(os.path.dirname(known_hosts), mode=0o700, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="switchback-src-")
    private_dir = tempfile.mkdtemp(prefix="switchback-git-")  # 0700: key file, empty HOME
    try:
        env = git_environment(source, credential=credential, private_dir=private_dir, known_hosts=known_hosts)

        def git(*args: str) -> subprocess.CompletedProcess:
            return _git(list(args), cwd=workdir, env=env, scrub=scrub)

        init = git("init", "-q", ".")
        if init.returncode:
            _fail("git init", init)
        fetch = git("fetch", "-q", "--no-recurse-submodules", "--depth", "1", "--", source.url, sha)
        if fetch.returncode:
            # Servers (file:// ones among them) may refuse to serve an unadvertised sha
            # unless uploadpack.allowAnySHA1InWant is set: fall back to a full fetch.
            fetch = git("fetch", "-q", "--no-recurse-submodules", "--", source.url, "+refs/*:refs/remotes/origin/*")
            if fetch.returncode:
                _fail("git fetch", fetch)
            checkout = git("checkout", "-q", "--detach", sha, "--")
        else:
            checkout = git("checkout", "-q", "--detach", "FETCH_HEAD", "--")
        if checkout.returncode:
            _fail_missing_commit(f"git checkout {sha[:12]}", checkout, sha=sha, url=scrub(source.url))
        head = git("rev-parse", "HEAD").stdout.strip()
        if not head.startswith(sha):
            raise PermanentError(f"fetched commit {head[:12]} is not the requested {sha[:12]}")
        return workdir
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
