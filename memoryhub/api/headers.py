"""Parsing the conditional and fencing headers of memory writes."""

from __future__ import annotations

from memoryhub.errors import Invalid

from .params import BIGINT_MAX, INT_MAX, parse_int


def parse_version_header(value: str | None, name: str) -> int | None:
    """`"3"`, `W/"3"` or `3` -> 3; absent -> None."""
    if value is None or value.strip() == "":
        return None
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    try:
        return parse_int(raw, name=name, high=INT_MAX)
    except Invalid:
        raise Invalid(f'{name} must be a version in quotes, like "3"', **{name: ["not a version"]})


def parse_fencing_token(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    return parse_int(value.strip(), name="X-Fencing-Token", high=BIGINT_MAX)


def parse_if_none_match(value: str | None) -> bool:
    if value is None:
        return False
    if value.strip() != "*":
        raise Invalid("If-None-Match on a write must be *", **{"If-None-Match": ["must be *"]})
    return True
