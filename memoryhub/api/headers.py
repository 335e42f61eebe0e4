"""Parsing the conditional and fencing headers of memory writes."""

from __future__ import annotations

from memoryhub.errors import Invalid


def parse_version_header(value: str | None, name: str) -> int | None:
    """`"3"`, `W/"3"` or `3` -> 3; absent -> None."""
    if value is None or value.strip() == "":
        return None
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    if not raw.isdigit():
        raise Invalid(f'{name} must be a version in quotes, like "3"', **{name: ["not a version"]})
    return int(raw)


def parse_fencing_token(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    if not value.strip().isdigit():
        raise Invalid("X-Fencing-Token must be an integer", **{"X-Fencing-Token": ["not an integer"]})
    return int(value.strip())


def parse_if_none_match(value: str | None) -> bool:
    if value is None:
        return False
    if value.strip() != "*":
        raise Invalid("If-None-Match on a write must be *", **{"If-None-Match": ["must be *"]})
    return True
