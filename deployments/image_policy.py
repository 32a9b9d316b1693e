"""Which prebuilt images a project may run: its ``image_template`` against the operator's rules.

A project runs the images the platform builds for it, or images named by a template the
operator allows (``SWITCHBACK_ALLOWED_IMAGE_TEMPLATES``).  Whatever the allow-list says, a
template never names the repositories the platform builds other projects' images into
(``<slug>``, ``localhost/<slug>``, ``docker.io/library/<slug>`` as Podman's Docker API tags
them, ``switchback/<slug>``, ``sb-<installation>/<slug>`` as the single host names its builds,
``<SWITCHBACK_REGISTRY>/<slug>``): one project would otherwise run another's code, with its
baked-in files.

The template is parsed with the image reference grammar of the distribution project
(https://github.com/distribution/reference/blob/main/reference.go), so ``..``, spaces,
options (``--privileged``) and bare image ids cannot pass as a name.
"""

from __future__ import annotations

import fnmatch
import re

from django.conf import settings

from .errors import PermanentError, ValidationError
from .runtimes.image_ref import image_ref_format

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)
# Namespaces the platform builds or pushes project images into: "<namespace>/<slug>".
_PLATFORM_NAMESPACES = ("docker.io/library", "localhost", "docker.io/switchback", "localhost/switchback")
# The single host's builds: "sb-<installation id>/<slug>" (runtimes.single_host.images.image_tag),
# any installation's.
_INSTALLATION_NAMESPACE = re.compile(r"^(?:docker\.io|localhost)/sb-[a-z0-9]{1,16}$")


def _normalize(name: str) -> str:
    """A repository name as the engine resolves it: a domain first, Docker Hub's default."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if rest else f"docker.io/library/{name}"


def _platform_repositories(slug: str) -> set[str]:
    """Where the platform keeps the images it builds for ``slug``."""
    from .installation import installation_id

    names = {f"{namespace}/{slug}" for namespace in _PLATFORM_NAMESPACES}
    names |= {f"{domain}/sb-{installation_id()}/{slug}" for domain in ("docker.io", "localhost")}
    registry = settings.SWITCHBACK.get("REGISTRY", "").rstrip("/")
    if registry:
        names.add(_normalize(f"{registry}/{slug}"))
    return names


def _platform_owner(repository: str) -> str | None:
    """The slug whose built images ``repository`` holds, if it is a platform repository."""
    head, _, last = repository.rpartition("/")
    registry = settings.SWITCHBACK.get("REGISTRY", "").rstrip("/")
    namespaces = {*_PLATFORM_NAMESPACES, *([_normalize(f"{registry}/x").rpartition("/")[0]] if registry else [])}
    return last if head in namespaces or _INSTALLATION_NAMESPACE.match(head) else None


def _fill(template: str, *, project_slug: str, sha: str) -> str:
    """Fill in the only placeholders a template may hold: {sha}, {short_sha}, {project}."""
    return image_ref_format(template, project=project_slug, sha=sha)


def allowed_templates() -> list[str]:
    return [p for p in settings.SWITCHBACK.get("ALLOWED_IMAGE_TEMPLATES", []) if p]


def _allowed_by_operator(template: str) -> bool:
    for pattern in allowed_templates():
        # "registry.example.com/team/" means everything under it; otherwise a glob.
        if pattern.endswith(("/", ":")) and template.startswith(pattern):
            return True
        if fnmatch.fnmatchcase(template, pattern):
            return True
    return False


def image_template_validate(*, template: str, project_slug: str) -> str:
    """Return the template if this project may run the images it names; raise otherwise.

    An empty template (build from the repository) is always allowed.
    """
    if not template:
        return template
    sample = _fill(template, project_slug=project_slug, sha="0" * 40)
    match = _REFERENCE.match(sample)
    if "{" in sample or "}" in sample or match is None or len(match["name"]) > 255:
        raise ValidationError(
            "image_template: not an image name. Write a full reference such as "
            "registry.example.com/team/app:{sha}; only {sha}, {short_sha} and {project} are filled in.",
            code="invalid",
        )
    repository = _normalize(match["name"])
    owner = _platform_owner(repository)
    if owner is not None and repository in _platform_repositories(project_slug):
        return template  # the project's own built images
    if owner is not None:
        raise ValidationError(
            f"image_template: {match['name']} is where the platform keeps the images it builds for "
            f"projects; a project runs only its own built images or images from an allowed registry.",
            code="image_not_allowed",
        )
    if not _allowed_by_operator(template):
        allowed = ", ".join(allowed_templates()) or "none; only the project's own built images"
        raise ValidationError(
            f"image_template: {template} is not an image this platform allows "
            f"(SWITCHBACK_ALLOWED_IMAGE_TEMPLATES: {allowed}).",
            code="image_not_allowed",
        )
    return template


def image_template_render(*, template: str, project_slug: str, sha: str) -> str:
    """The image a deployment of ``sha`` runs, checked again at deploy time.

    The operator may have narrowed the allow-list since the template was saved, and a
    rollback's snapshot may hold an old template: refusing here keeps the rule true for
    every deployment, not only for settings saved after it.
    """
    try:
        image_template_validate(template=template, project_slug=project_slug)
    except ValidationError as exc:
        raise PermanentError(exc.message, code=exc.code) from exc
    return _fill(template, project_slug=project_slug, sha=sha)
