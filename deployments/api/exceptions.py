"""One exception handler: every API error is JSON with a message a person can read."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import SwitchbackError


def _flatten(detail, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out += _flatten(value, f"{prefix}{name}: " if name else prefix)
        return out
    if isinstance(detail, list):
        out = []
        for item in detail:
            out += _flatten(item, prefix)
        return out
    return [f"{prefix}{detail}"]


def exception_handler(exc, context):
    if isinstance(exc, SwitchbackError):
        return Response({"error": exc.code, "message": exc.message}, status=exc.status_code)
    if isinstance(exc, RecursionError):  # a hostile document deeper than any parser allows
        return Response({"error": "parse_error", "message": "The request is nested too deeply."},
                        status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):  # a form body over DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response({"error": "too_large", "message": "The request body is too large."},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        return Response({"error": "not_found", "message": str(exc) or "Not found."},
                        status=status.HTTP_404_NOT_FOUND)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's 500 handler answers (JSON for the API)
    if isinstance(exc, exceptions.ValidationError):
        messages = _flatten(exc.detail)
        response.data = {"error": "invalid", "message": " ".join(messages), "fields": exc.detail}
    else:
        detail = getattr(exc, "detail", "")
        response.data = {"error": getattr(exc, "default_code", "error"), "message": str(detail)}
    return response
