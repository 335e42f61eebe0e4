"""The one JSON parser of the API: a body the database or the services cannot take is a 400 here,
before any view sees it.

Python's json accepts what PostgreSQL's jsonb and the rest of the hub do not: NaN and Infinity (and
`1e400`, which becomes inf), `\\u0000` (jsonb: "unsupported Unicode escape sequence"), a lone
surrogate `\\ud800` (not encodable as UTF-8), and nesting deep enough to exhaust the recursion limit
in the merge patch, the size check or the encoder.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from memoryhub.errors import Invalid

# Strings a text column or jsonb cannot store: NUL, and surrogates left unpaired by the JSON escapes.
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range for a JSON number")
    return value


def _printable(part: Any) -> str:
    """A key as it can be shown in the error (which is JSON too): unstorable characters escaped."""
    return UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", str(part))


def _field(path: list[Any]) -> str:
    return _printable(path[0]) if path else "non_field_errors"


def _where(path: list[Any]) -> str:
    return ".".join(_printable(part) for part in path) or "the body"


def check_value(value: Any, *, max_depth: int) -> None:
    """Walk a parsed JSON value without recursion: every key and string storable, depth bounded."""
    stack: list[tuple[Any, list[Any]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > max_depth:
            raise Invalid(
                f"JSON nested deeper than {max_depth} levels at {_where(path[:3])}...",
                **{_field(path): [f"nested deeper than {max_depth} levels"]},
            )
        if isinstance(node, str):
            if UNSTORABLE.search(node):
                raise Invalid(
                    f"{_where(path)} contains a NUL character or an unpaired surrogate",
                    **{_field(path): ["contains a NUL character or an unpaired surrogate"]},
                )
        elif isinstance(node, dict):
            for key, child in node.items():
                if UNSTORABLE.search(key):
                    raise Invalid(
                        f"a key in {_where(path)} contains a NUL character or an unpaired surrogate",
                        **{_field(path or [key]): ["a key contains a NUL character or an unpaired surrogate"]},
                    )
                stack.append((child, [*path, key]))
        elif isinstance(node, list):
            stack.extend((child, [*path, index]) for index, child in enumerate(node))


def loads(raw: bytes | str) -> Any:
    """Parse JSON the hub can store; ValueError (ParseError) for what is not JSON, Invalid for what
    is JSON but cannot be stored or is nested too deep."""
    text = raw if isinstance(raw, str) else raw.decode()
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise Invalid("JSON nested too deeply", non_field_errors=["nested too deeply"])
    max_depth = settings.MEMORYHUB_MAX_JSON_DEPTH
    # The walk costs Python per value, so only bodies that could fail it pay for it: a NUL or a
    # surrogate can only come from a \u escape (raw ones are invalid JSON or invalid UTF-8), and a
    # body with fewer brackets than the limit cannot nest deeper than it.
    if "\\u" in text or text.count("[") + text.count("{") > max_depth:
        check_value(data, max_depth=max_depth)
    return data


class StrictJSONParser(JSONParser):
    """JSON that the hub can store, or a 400 in the error shape naming the field."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ParseError(f"The body is not valid {encoding}.")
        try:
            return loads(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}")
