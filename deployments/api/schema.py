"""OpenAPI schema touches (drf-spectacular post-processing hooks).

DRF's ModelSerializer leaves a model field's default to the model, so the generated schema
shows none; callers then cannot tell what an omitted field becomes.  This hook copies the
model's plain (non-callable) defaults into the request and response components of the
serializers that map a model, without changing what the serializers do.
"""

from __future__ import annotations

from django.db.models import NOT_PROVIDED


def _defaults_of(model) -> dict:
    found = {}
    for field in model._meta.concrete_fields:
        default = field.default
        if default is NOT_PROVIDED or callable(default):
            continue
        if isinstance(default, str | int | float | bool) or default is None:
            found[field.name] = default
    return found


def model_defaults_hook(result, generator, request, public):
    """Add ``default`` to properties of model-backed components (Project, ...)."""
    from deployments.models import Project

    models = {"Project": Project}
    for name, schema in (result.get("components", {}).get("schemas", {})).items():
        if name.startswith("Patched"):
            continue  # in a PATCH an omitted field keeps its value: no default to show
        base = name.removesuffix("Request")
        model = models.get(base)
        if model is None:
            continue
        defaults = _defaults_of(model)
        for prop, spec in (schema.get("properties") or {}).items():
            if prop in defaults and "default" not in spec and not spec.get("readOnly"):
                spec["default"] = defaults[prop]
    return result
