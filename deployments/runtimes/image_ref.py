"""One way to turn an image template into an image reference.

A project's `image_template` (prebuilt images), `KUBE_IMAGE_TEMPLATE` and
`render_manifests` all format through `image_ref_format`.  The template is the project
admin's text, so it is filled by plain replacement of known placeholders, never with
`str.format` (which would let a template read attributes of its arguments).
"""

from __future__ import annotations

SHORT_SHA_LENGTH = 7  # git's default abbreviation, as GitHub shows it


def image_ref_format(template: str, *, project: str, sha: str, registry: str = "") -> str:
    values = {"{project}": project, "{sha}": sha, "{short_sha}": sha[:SHORT_SHA_LENGTH],
              "{registry}": registry.rstrip("/")}
    out = template
    for placeholder, value in values.items():
        out = out.replace(placeholder, value)
    return out
