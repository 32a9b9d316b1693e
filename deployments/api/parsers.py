"""The API's JSON parser: DRF's, made safe against two hostile bodies.

- `"[" * 200000`: the json module recurses once per level and raises RecursionError,
  which DRF does not catch (a 500).  Here it is a 400 ParseError.
- NUL characters (`"\\u0000"`): PostgreSQL refuses them in text and jsonb, so a value
  holding one would fail on save (a 500).  No field of the API takes one: refused here,
  at the boundary, before any view runs.
"""

from __future__ import annotations

import codecs
import json

from django.conf import settings
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def nul_find(value) -> bool:
    """True if a NUL is in any string (key or value) of a parsed JSON document.

    Iterative: the document may be as deep as the recursion limit allows.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # DRF hands the raw stream to the parser, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE
        # check: read at most that much.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is over the {limit}-byte limit.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(codecs.decode(raw, encoding), parse_constant=_no_constant)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the document is nested too deeply.") from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if nul_find(data):
            raise ParseError("JSON parse error - NUL characters (\\u0000) are not accepted.")
        return data


def _no_constant(name: str):
    # NaN and Infinity are not JSON (DRF's strict mode refuses them the same way).
    raise ValueError(f"Out of range float values are not JSON compliant: {name!r}")
