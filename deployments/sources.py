"""Where a project's code may come from, and how its build file is named.

A project's admin writes ``clone_url``, ``dockerfile``, ``production_branch`` and the
deploy token; the worker hands them to git and the container engine. So each is checked
against a small grammar that git and the engine cannot read as an option, a helper
program or a path outside the checkout, and against what the operator allows:

- ``https://host[:port]/path``: any public host; no user name or password in it (a
  private repository is reached with the project's deploy credential instead);
- ``ssh://[user@]host[:port]/path`` and the scp form ``user@host:path``: a user name, no
  password;
- ``http://`` only to a host the operator lists (an internal git server without TLS);
- ``file:///path`` only under a folder the operator lists.

A host that resolves to a loopback, private, link-local, unspecified, multicast or
otherwise non-global address is refused unless the operator lists it
(``SWITCHBACK_ALLOWED_SOURCE_HOSTS``), so a clone URL cannot make the worker send requests
inside the host's network. The check runs when the URL is saved and again just before
each fetch (DNS may have changed); the fetch pins HTTP(S) to the addresses checked.

Everything here raises ``SourceRefused`` (a PermanentError: retrying cannot help) whose
message never repeats the URL or the token, since either may hold a secret.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import PermanentError, TransientError

MAX_URL = 500
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space: no control char, no NUL
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
# git reads "user@host:path" as ssh when no "/" comes before the first ":".
_SCP = re.compile(r"(?P<user>[^@/:]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\[\]]+):(?P<path>.*)")
_PATH = re.compile(r"[A-Za-z0-9._~/+-]*")
DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}


class SourceRefused(PermanentError):
    """A clone URL, build file or deploy credential that Switchback will not use."""

    def __init__(self, message: str):
        super().__init__(message, code="source_refused")


@dataclass(frozen=True)
class SourcePolicy:
    """What the operator allows beyond public https/ssh hosts (settings, see from_settings)."""

    allowed_roots: tuple[str, ...] = ()  # folders file:// URLs may point into
    allowed_hosts: tuple[str, ...] = ()  # host names, IP addresses or networks (CIDR) that may be local

    @classmethod
    def from_settings(cls) -> SourcePolicy:
        from django.conf import settings

        config = settings.SWITCHBACK
        return cls(
            allowed_roots=tuple(config.get("ALLOWED_SOURCE_ROOTS", ())),
            allowed_hosts=tuple(config.get("ALLOWED_SOURCE_HOSTS", ())),
        )

    def root_for(self, path: str) -> str | None:
        real = os.path.realpath(path)
        for root in self.allowed_roots:
            root_real = os.path.realpath(root)
            if os.path.commonpath([real, root_real]) == root_real:
                return root_real
        return None

    def host_listed(self, host: str, addresses: tuple[str, ...]) -> bool:
        name = host.lower().rstrip(".")
        networks = []
        for entry in self.allowed_hosts:
            entry = entry.strip().lower().strip("[]")
            if entry.rstrip(".") == name:
                return True
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        if not networks or not addresses:
            return False
        return all(any(ipaddress.ip_address(a) in net for net in networks) for a in addresses)


@dataclass(frozen=True)
class Source:
    """A clone URL that passed the checks, and what the fetch needs to know about it."""

    url: str
    scheme: str  # "https", "http", "ssh" or "file" (the scp form is "ssh")
    host: str = ""
    port: int = 0
    path: str = ""  # file://: the resolved folder
    addresses: tuple[str, ...] = field(default=())  # what the host resolved to when checked


def _refuse(message: str) -> SourceRefused:
    return SourceRefused(message)


def _address_kind(address: str) -> str | None:
    """None for a public address, else what kind of local address it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-global"


def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientError(f"cannot resolve the source host {host}: {exc.strerror or exc}") from exc
    return tuple(dict.fromkeys(info[4][0] for info in infos))


def _check_host(host: str, *, scheme: str, port: int, policy: SourcePolicy, resolve: bool) -> tuple[str, ...]:
    bare = host.strip("[]")
    addresses: tuple[str, ...] = ()
    try:
        addresses = (str(ipaddress.ip_address(bare)),)
    except ValueError:
        if not _HOST.fullmatch(host):
            raise _refuse("clone_url: the host is not a valid host name.") from None
        if resolve:
            addresses = _resolve(bare, port)
    listed = policy.host_listed(bare, addresses)
    if scheme == "http" and not listed:
        raise _refuse("clone_url: plain http:// is only allowed to hosts the operator lists in "
                      "SWITCHBACK_ALLOWED_SOURCE_HOSTS; use https:// or ssh://.")
    if not listed:
        for address in addresses:
            kind = _address_kind(address)
            if kind:
                raise _refuse(f"clone_url: the host resolves to a {kind} address; only hosts the operator "
                              "lists in SWITCHBACK_ALLOWED_SOURCE_HOSTS may be local.")
    return addresses


def source_check(url: str, *, policy: SourcePolicy | None = None, resolve: bool = True) -> Source:
    """The checked Source for ``url``, or SourceRefused saying what is wrong.

    ``resolve=False`` checks the shape and the allow-lists without DNS (a save while the
    resolver is down); the fetch always resolves, and an unresolvable host is then a
    TransientError (the host may come back).
    """
    policy = policy or SourcePolicy.from_settings()
    if not isinstance(url, str) or not url:
        raise _refuse("clone_url: give a git URL.")
    if len(url) > MAX_URL:
        raise _refuse(f"clone_url: at most {MAX_URL} characters.")
    if not _PRINTABLE.fullmatch(url):
        raise _refuse("clone_url: spaces, control characters and non-ASCII characters are not allowed "
                      "(write host names in punycode).")
    if url.startswith("-"):
        raise _refuse("clone_url: a URL cannot start with '-'.")

    scheme, sep, _ = url.partition("://")
    if not sep:
        scp = _SCP.fullmatch(url)
        if scp is None or "::" in url.split("@", 1)[0]:
            raise _refuse("clone_url: use https://host/owner/repo.git, ssh://git@host/owner/repo.git or "
                          "git@host:owner/repo.git.")
        user, host, path = scp.group("user", "host", "path")
        if not _USER.fullmatch(user) or not path or path.startswith("-") or not _PATH.fullmatch(path):
            raise _refuse("clone_url: in git@host:owner/repo.git form, use a plain user name and a path of "
                          "letters, digits and . _ ~ / + -, not starting with '-'.")
        addresses = _check_host(host, scheme="ssh", port=22, policy=policy, resolve=resolve)
        return Source(url=url, scheme="ssh", host=host.strip("[]"), port=22, addresses=addresses)

    if scheme != scheme.lower():
        raise _refuse("clone_url: write the scheme in lowercase (https://, ssh://).")
    if scheme == "file":
        return _check_file(url, policy)
    if scheme not in ("https", "http", "ssh"):
        raise _refuse("clone_url: only https://, ssh:// and git@host:path URLs are accepted "
                      "(http:// and file:// only where the operator allows them).")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise _refuse("clone_url: not a valid URL (is the port a number from 1 to 65535?).") from None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise _refuse("clone_url: a clone URL takes no query (?) or fragment (#).")
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else None
    if userinfo is not None:
        if scheme in ("https", "http"):
            raise _refuse("clone_url: credentials do not belong in the URL (they would be shown to every "
                          "viewer); set the project's deploy token instead.")
        if ":" in userinfo or not _USER.fullmatch(userinfo):
            raise _refuse("clone_url: an ssh:// URL may name a user (git@), never a password; set the "
                          "project's deploy key instead.")
    if not host:
        raise _refuse("clone_url: the URL names no host.")
    if not parts.path or parts.path == "/":
        raise _refuse("clone_url: the URL names no repository path.")
    addresses = _check_host(host if ":" not in host else f"[{host}]", scheme=scheme, port=port,
                            policy=policy, resolve=resolve)
    return Source(url=url, scheme=scheme, host=host, port=port, addresses=addresses)


def _check_file(url: str, policy: SourcePolicy) -> Source:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment or "%" in url:
        raise _refuse("clone_url: write a local repository as file:///absolute/path.")
    if not policy.allowed_roots or policy.root_for(parts.path) is None:
        raise _refuse("clone_url: file:// URLs are only allowed inside the folders the operator lists in "
                      "SWITCHBACK_ALLOWED_SOURCE_ROOTS.")
    return Source(url=url, scheme="file", path=os.path.realpath(parts.path))


# --- model field validators (Django's ValidationError, for full_clean, forms and DRF) -------


def clone_url_validator(value: str) -> None:
    """Shape and allow-lists when a project is saved; DNS only if it answers now."""
    from django.core.exceptions import ValidationError

    if not value:
        return  # the GitHub HTTPS URL of the repository
    try:
        source_check(value, resolve=True)
    except TransientError:
        try:
            source_check(value, resolve=False)  # resolver down: the fetch checks again
        except SourceRefused as exc:
            raise ValidationError(exc.message.removeprefix("clone_url: ")) from None
    except SourceRefused as exc:
        raise ValidationError(exc.message.removeprefix("clone_url: ")) from None


DOCKERFILE_MAX = 200


def dockerfile_path_check(value: str) -> str:
    """A relative path of plain segments: no absolute path, no '..', no option, no odd byte."""
    if not isinstance(value, str) or not value:
        raise SourceRefused("dockerfile: give the build file's path inside the repository, e.g. Dockerfile.")
    if len(value) > DOCKERFILE_MAX or not _PRINTABLE.fullmatch(value) or "\\" in value:
        raise SourceRefused(f"dockerfile: use at most {DOCKERFILE_MAX} printable characters, no spaces "
                            "or backslashes.")
    if value.startswith(("/", "-", "~")):
        raise SourceRefused("dockerfile: the path is relative to the repository root (no leading '/', '-' "
                            "or '~').")
    if any(segment in ("", "..") for segment in value.split("/")):
        raise SourceRefused("dockerfile: the path must stay inside the repository: no '..' and no "
                            "empty segments.")
    return value


def dockerfile_validator(value: str) -> None:
    from django.core.exceptions import ValidationError

    try:
        dockerfile_path_check(value)
    except SourceRefused as exc:
        raise ValidationError(exc.message.removeprefix("dockerfile: ")) from None


def dockerfile_resolve(checkout: str, dockerfile: str) -> str:
    """The build file's path relative to the checkout, once its real path is inside it.

    A symlink in the repository (Dockerfile -> /etc/shadow) would otherwise make the
    container engine client read a host file and quote it in the build error.
    """
    dockerfile_path_check(dockerfile)
    root = os.path.realpath(checkout)
    real = os.path.realpath(os.path.join(root, dockerfile))
    if os.path.commonpath([real, root]) != root:
        raise SourceRefused(f"dockerfile: {dockerfile} leads outside the repository (a symlink?); "
                            "the build file must be a file inside the repository.")
    if not os.path.isfile(real):
        raise SourceRefused(f"dockerfile: {dockerfile} is not a file in the repository at this commit.")
    return os.path.relpath(real, root)


# git check-ref-format's rules for a branch name, as a pattern.
_BRANCH = re.compile(r"(?!-)(?!.*(?:\.\.|//|@\{|\.lock/|/\.))(?!\.)[A-Za-z0-9._/+@-]{1,255}(?<![./])(?<!\.lock)")


def branch_validator(value: str) -> None:
    from django.core.exceptions import ValidationError

    if not isinstance(value, str) or not _BRANCH.fullmatch(value) or value == "@":
        raise ValidationError("Use a git branch name: letters, digits and . _ / + @ -, not starting with "
                              "'-' or '.', without '..', '//' or '@{'.")


TOKEN_MAX = 500


def git_token_validator(value: str) -> None:
    """A token goes into an HTTP header: printable ASCII only (no CR/LF header injection)."""
    from django.core.exceptions import ValidationError

    if value and (len(value) > TOKEN_MAX or not _PRINTABLE.fullmatch(value)):
        raise ValidationError(f"A token is at most {TOKEN_MAX} printable ASCII characters without spaces.")
