"""Build, reuse, push and prune project images through the Docker Engine API."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import deque

import docker
import docker.errors
import requests.exceptions

from deployments.errors import PermanentError, TransientError
from deployments.runtimes.base import BuildSpec, BuiltImage, LogSink
from deployments.sources import SourceRefused, dockerfile_resolve, source_check

from .base_image import ensure_base_image
from .source import commit_describe, fetch_commit

LABEL_PROJECT = "switchback.project"
LABEL_SHA = "switchback.sha"
LABEL_INSTANCE = "switchback.instance"  # the installation that built it (as on its containers)
LABEL_COMMIT_MESSAGE = "switchback.commit-message"
LABEL_COMMIT_AUTHOR = "switchback.commit-author"
LOG_TAIL_LINES = 15
ERROR_MAX_CHARS = 2000
# Podman's build cache lookup reads every image; one removed meanwhile (a prune by another
# project or installation sharing the store) fails it with these, and a retry succeeds.
_STORE_RACE = re.compile(r"(layer|image) not known")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def image_tag(project: str, sha: str, *, instance: str) -> str:
    """The local name of a project's image: one per installation, so two installations that
    share an engine (and a project slug) never reuse or prune each other's images."""
    return f"sb-{instance}/{project.lower()}:{sha.lower()}"


def check_slug(project: str) -> str:
    if not _SLUG.match(project):
        raise PermanentError(f"invalid project slug {project!r}: use lowercase letters, digits and dashes")
    return project


def find_image(client: docker.DockerClient, ref: str):
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise TransientError(f"container engine error looking up {ref}: {exc}") from exc


def build_image(client: docker.DockerClient, spec: BuildSpec, log: LogSink, *, instance: str,
                known_hosts: str = "") -> BuiltImage:
    """Build spec.sha once; later calls for the same sha reuse the image.

    ``known_hosts``: the project's SSH known_hosts file (see source.fetch_commit).
    """
    check_slug(spec.project)
    # A source the platform refuses fails here, before the engine is asked anything (the
    # fetch checks again, with DNS).
    source_check(spec.clone_url, resolve=False)
    tag = image_tag(spec.project, spec.sha, instance=instance)
    existing = find_image(client, tag)
    if existing is not None:
        log(f"image {tag} already built ({existing.id[:19]}), reusing it")
        labels = (existing.attrs.get("Config") or {}).get("Labels") or {}
        built = BuiltImage(ref=tag, digest=existing.id, reused=True,
                           commit_message=_label_text(labels.get(LABEL_COMMIT_MESSAGE)),
                           commit_author=_label_text(labels.get(LABEL_COMMIT_AUTHOR)))
        return push_image(client, built, spec, log) if spec.registry else built

    ensure_base_image(client, log=log)
    log(f"fetching {spec.sha[:12]}")
    workdir = fetch_commit(spec.clone_url, spec.sha, credential=spec.credential, known_hosts=known_hosts)
    # Named only once the fetch's check passed: a URL it refuses may hold a secret.
    log(f"fetched {spec.sha[:12]} from {spec.clone_url}")
    try:
        message, author = commit_describe(workdir)
        dockerfile = _build_files_inside(workdir, spec.dockerfile)
        image_id = _stream_build(client, workdir, spec, tag, log, dockerfile=dockerfile, instance=instance,
                                 commit=(message, author))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    built = BuiltImage(ref=tag, digest=image_id or client.images.get(tag).id, commit_message=message,
                       commit_author=author)
    log(f"built {tag} ({built.digest[:19]})")
    return push_image(client, built, spec, log) if spec.registry else built


def _label_text(value) -> str:
    """A commit label written by _stream_build (a JSON string); anything else is no text."""
    try:
        text = json.loads(value) if isinstance(value, str) else ""
    except ValueError:
        return ""
    return text if isinstance(text, str) else ""


def _build_files_inside(workdir: str, dockerfile: str) -> str:
    """The build file's real path inside the checkout, relative to it.

    docker-py reads a build file that lies outside the context (an absolute path, '..',
    or a symlink) from the worker's disk and sends it to the engine, whose parse error
    then quotes it; it also reads .dockerignore itself. Neither may lead out of the
    checkout.
    """
    ignore = os.path.join(workdir, ".dockerignore")
    if os.path.islink(ignore):
        root = os.path.realpath(workdir)
        if os.path.commonpath([os.path.realpath(ignore), root]) != root:
            raise SourceRefused(".dockerignore is a symlink that leads outside the repository.")
    return dockerfile_resolve(workdir, dockerfile)


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= ERROR_MAX_CHARS else text[:ERROR_MAX_CHARS] + " [...]"


def _stream_build(client, workdir: str, spec: BuildSpec, tag: str, log: LogSink, *, dockerfile: str,
                  instance: str, commit: tuple[str, str] = ("", "")) -> str:
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    image_id = ""
    try:
        stream = client.api.build(
            path=workdir,
            dockerfile=dockerfile,
            tag=tag,
            rm=True,
            forcerm=True,
            buildargs={"GIT_SHA": spec.sha},
            # JSON strings: a commit message has newlines and any character; a label stays one line.
            labels={LABEL_PROJECT: spec.project, LABEL_SHA: spec.sha, LABEL_INSTANCE: instance,
                    LABEL_COMMIT_MESSAGE: json.dumps(commit[0]), LABEL_COMMIT_AUTHOR: json.dumps(commit[1])},
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                # The engine's message and the build's own last lines (all from inside the checkout).
                detail = _short(str(chunk["error"]))
                if _STORE_RACE.search(detail):  # another client removed an image mid-build: try again
                    raise TransientError(f"container engine storage changed during the build: {detail}")
                raise PermanentError(f"build failed: {detail}\n" + "\n".join(tail), code="build_failed")
            for line in chunk.get("stream", "").splitlines():
                if line.strip():
                    tail.append(line)
                    log(line)
            image_id = chunk.get("aux", {}).get("ID", image_id)
    except docker.errors.BuildError as exc:
        raise PermanentError(f"build failed: {_short(str(exc.msg))}", code="build_failed") from exc
    except (OSError, ValueError, TypeError) as exc:
        # The client could not read the build context: say so without quoting what it read.
        raise PermanentError(f"build failed: the build context could not be read ({exc.__class__.__name__})",
                             code="build_failed") from exc
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise TransientError(f"container engine error during build: {exc}") from exc
    return image_id


_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def push_image(client, built: BuiltImage, spec: BuildSpec, log: LogSink) -> BuiltImage:
    """Tag for spec.registry and push.

    The revision runs from `<registry>/<project>:<sha>`: the tag exists in the local store
    (so starting it needs no pull) and in the registry (so an image pruned here, or another
    host, pulls it back).  The pushed manifest's digest is recorded.  Docker reports it in
    an "aux" message, Podman in a "<tag>: digest: sha256:… size: …" status line.  Trusting
    a registry without TLS is the container engine's setting (registries.conf "insecure",
    or Docker's insecure-registries), not Switchback's.
    """
    repository = f"{spec.registry.rstrip('/')}/{spec.project.lower()}"
    tag = spec.sha.lower()
    image = client.images.get(built.ref)
    image.tag(repository, tag)
    digest = ""
    try:
        for chunk in client.images.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise TransientError(f"push to {spec.registry} failed: {chunk['error']}")
            found = _PUSHED_DIGEST.search(str(chunk.get("status", "")))
            digest = chunk.get("aux", {}).get("Digest") or (found.group(1) if found else digest)
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise TransientError(f"push to {spec.registry} failed: {exc}") from exc
    ref = f"{repository}:{tag}"
    log(f"pushed {ref}" + (f" ({digest})" if digest else ""))
    return BuiltImage(ref=ref, digest=digest or built.digest, reused=built.reused)


def prune_images(client: docker.DockerClient, project: str, *, keep_shas: set[str], instance: str) -> list[str]:
    """Remove this installation's images of the project whose commit no kept revision needs
    (`keep_shas`, from lifecycle.images_kept); an image a container still uses is kept too.
    Another installation's images (same slug, same engine) are never listed."""
    try:
        # One label server-side: Podman 4.3's Docker API answers nothing for two label filters.
        images = client.images.list(filters={"label": f"{LABEL_PROJECT}={project}"})
    except (docker.errors.APIError, requests.exceptions.RequestException):
        return []  # pruning is housekeeping: the next build tries again
    images = [image for image in images if (image.labels or {}).get(LABEL_INSTANCE) == instance]
    keep = {sha.lower() for sha in keep_shas}
    removed = []
    for image in images:
        if (image.labels or {}).get(LABEL_SHA, "").lower() in keep:
            continue
        try:
            # Untag name by name: removing by id refuses images with several tags.
            for name in image.tags or [image.id]:
                client.images.remove(name, force=False)
            removed.append(image.id)
        except docker.errors.APIError:
            pass  # still used by a container (a warm revision): keep it
    return removed
