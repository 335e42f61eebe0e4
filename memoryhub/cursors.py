"""Opaque, tamper-checked page cursors for keyset pagination.

A list that can grow is read a page at a time from where the previous page ended (`WHERE (a, b) >
(last a, last b) ORDER BY a, b LIMIT n`), never by skipping rows: each page costs what it returns,
and rows inserted meanwhile neither shift a page nor are counted twice. The position travels to the
client as `next`, signed with the server's secret and bound to the list and its filters, so a client
can only hand back what the server gave it: a changed or forged cursor is a 400 (`Invalid`), and a
cursor of one list or filter set is refused by another. The position holds only values of the last
row the caller was shown, so it leaks nothing it did not already see.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core import signing

from .errors import Invalid

_SALT = "memoryhub.cursor"
MAX_CURSOR_LENGTH = 2000


def fingerprint(**filters: Any) -> str:
    """A short digest of what a list was asked for: a cursor only continues the same list."""
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode(kind: str, position: list[Any], bound_to: str) -> str:
    """The cursor continuing list `kind` after `position` (the last row's sort key)."""
    return signing.dumps({"k": kind, "p": position, "f": bound_to}, salt=_SALT, compress=True)


def decode(cursor: str | None, kind: str, bound_to: str, *, arity: int) -> list[Any] | None:
    """The position in `cursor` (None for the first page), or 400 when it is not one this server
    issued for this list and these filters."""
    if not cursor:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise Invalid("cursor is not one this server issued", cursor=["invalid or tampered cursor"])
    try:
        data = signing.loads(cursor, salt=_SALT)
        position, list_kind, filters = data["p"], data["k"], data["f"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise Invalid("cursor is not one this server issued", cursor=["invalid or tampered cursor"]) from None
    if list_kind != kind or filters != bound_to:
        raise Invalid("cursor belongs to another list", cursor=["the list or its filters changed"])
    if not isinstance(position, list) or len(position) != arity:
        raise Invalid("cursor is not one this server issued", cursor=["invalid or tampered cursor"])
    return position


def position_int(value: Any) -> int:
    """An integer of a decoded position (it was signed, but its type is still checked)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("cursor is not one this server issued", cursor=["invalid or tampered cursor"])
    return value


def id_page(queryset, *, kind: str, filters: dict[str, Any], cursor: str | None, limit: int, offset: int = 0):
    """One page of `queryset` by ascending id after the cursor's id, and the next cursor (None on the
    last): one index range per page, however deep."""
    bound = fingerprint(**filters)
    after = decode(cursor, kind, bound, arity=1)
    if after is not None:
        queryset = queryset.filter(id__gt=position_int(after[0]))
    rows = list(queryset.order_by("id")[offset : offset + limit + 1])
    following = encode(kind, [rows[limit - 1].id], bound) if len(rows) > limit else None
    return rows[:limit], following
