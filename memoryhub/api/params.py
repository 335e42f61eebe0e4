"""Parsing the integers and times that come as text (query parameters, headers, the websocket's query
string) before any of them reaches the database.

Python's `int()` and `str.isdigit()` accept more than the database does: `int("٣")` is 3, `"²".isdigit()`
is true but `int("²")` raises, and `int("99999999999999999999")` is fine until PostgreSQL says
`bigint out of range`. Only ASCII digits within the column's range get through here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from memoryhub.errors import Invalid

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint, SQLite integer
INT_MAX = 2**31 - 1  # PostgreSQL integer (memory versions)
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def parse_int(raw: str, *, name: str, low: int = 0, high: int = BIGINT_MAX) -> int:
    """ASCII digits (a leading '-' where `low` < 0) within [low, high], or 400 naming `name`."""
    if not _INTEGER.fullmatch(raw) or (raw[0] == "-" and low >= 0):
        raise Invalid(f"{name} must be an integer", **{name: ["not an integer"]})
    value = int(raw)
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low} and {high}", **{name: ["out of range"]})
    return value


def int_param(params: Any, name: str, default: int, *, low: int = 0, high: int = BIGINT_MAX) -> int:
    """An integer query parameter; absent or empty gives `default`."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    return parse_int(raw, name=name, low=low, high=high)


def string_param(params: Any, name: str, *, max_length: int = 2000) -> str | None:
    """A text query parameter (a cursor, a name); absent or empty gives None. NUL and overlong values
    are a 400 before they reach a query."""
    raw = params.get(name)
    if not raw:
        return None
    if "\x00" in raw or len(raw) > max_length:
        raise Invalid(f"{name} is not valid", **{name: ["not a valid value"]})
    return raw


def time_param(params: Any, name: str) -> datetime | None:
    """An ISO 8601 time with a timezone, or None when absent. `parse_datetime` raises ValueError for a
    well-formed but impossible time (month 13), which would otherwise be a 500."""
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise Invalid(f"{name} must be an ISO 8601 time with a timezone", **{name: ["not a time"]})
    return value


class IdConverter:
    """`<id:name>` in a URL: a row id the database can look up. Django's `<int:>` takes any run of
    digits, and `99999999999999999999` then fails in the query (bigint out of range, or an
    OverflowError on SQLite) instead of being an id that does not exist: here it matches no URL (404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > BIGINT_MAX:
            raise ValueError("out of range")  # a converter's ValueError means "no match"
        return number

    def to_url(self, value: int) -> str:
        return str(value)
