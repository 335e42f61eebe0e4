"""Reading policies from the database into the pure PolicySet that policies.decide works on."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from .decide import DeferRule, FieldRule, NamespaceRule, PolicySet
from .models import DeferenceRule, FieldOwnership, NamespacePolicy


def _namespace_rule(row: NamespacePolicy) -> NamespaceRule:
    return NamespaceRule(
        pattern=row.pattern,
        readers=tuple(row.readers),
        writers=tuple(row.writers),
        write_mode=row.write_mode,
        default_ttl_seconds=row.default_ttl_seconds,
        max_content_bytes=row.max_content_bytes,
    )


# (position in the log, policies) per process; see policy_set.
_cached: tuple[tuple, PolicySet] | None = None
# Inside a request scope: {"position": ...} once the caller's token lookup has read it (see
# request_scope). Outside one: None, and a noted position is not kept.
_request_position: contextvars.ContextVar[dict | None] = contextvars.ContextVar("policy_position", default=None)

# Every policy change appends one `policy.changed` event in its own transaction, so while the newest
# one is unchanged the stored policies are too. `at` is part of the key because a seq can be handed
# out again after a rollback (or in a flushed test database).
_NEWEST = "SELECT {} FROM events_event WHERE type = 'policy.changed' ORDER BY seq DESC LIMIT 1"
POSITION_SQL = _NEWEST.format("seq, at")
# The same as two scalar subqueries, for a query made anyway (the token lookup) to carry along.
POSITION_COLUMNS = f"({_NEWEST.format('seq')}) AS policy_seq, ({_NEWEST.format('at')}) AS policy_at"


# The position while no policy was ever changed (no policy.changed event): a position like any other.
NO_CHANGE_YET = (0, None)


def _policy_log_position() -> tuple:
    scope = _request_position.get()
    if scope and "position" in scope:
        return scope["position"]
    with connection.cursor() as cursor:
        cursor.execute(POSITION_SQL)
        row = cursor.fetchone()
    return tuple(row) if row else NO_CHANGE_YET


@contextmanager
def request_scope() -> Iterator[None]:
    """Within one REST request, the position noted at authentication serves every policy_set() of
    the request (policies as of the request's start) instead of a query each. Outside a scope every
    policy_set() asks the database."""
    token = _request_position.set({})
    try:
        yield
    finally:
        _request_position.reset(token)


def note_position(seq, at) -> None:
    scope = _request_position.get()
    if scope is not None:
        scope["position"] = (seq, at) if seq is not None else NO_CHANGE_YET


def _load() -> PolicySet:
    return PolicySet(
        namespaces=tuple(_namespace_rule(row) for row in NamespacePolicy.objects.all()),
        fields=tuple(
            FieldRule(namespace=row.namespace, field=row.field, owners=tuple(row.owners))
            for row in FieldOwnership.objects.all()
        ),
        deference=tuple(
            DeferRule(resource=row.resource, role=row.role, defers_to=row.defers_to, window_seconds=row.window_seconds)
            for row in DeferenceRule.objects.all()
        ),
    )


def policy_set(*, fields: bool = False, deference: bool = False) -> PolicySet:
    """The current policies, all of them (`fields`/`deference` are accepted for readability at call
    sites). A change applies at once: each call checks the log position of the newest policy change
    with one indexed query and reloads only when it moved (in any process), instead of reading three
    tables on every request."""
    global _cached
    position = _policy_log_position()
    if _cached is not None and _cached[0] == position:
        return _cached[1]
    loaded = _load()
    _cached = (position, loaded)
    return loaded


def policies_export() -> dict:
    """The stored policies in the policy-file format (what `export_policies` prints)."""
    namespaces = []
    for row in NamespacePolicy.objects.all():
        entry: dict = {
            "pattern": row.pattern,
            "readers": row.readers,
            "writers": row.writers,
            "write_mode": row.write_mode,
        }
        if row.default_ttl_seconds is not None:
            entry["default_ttl_seconds"] = row.default_ttl_seconds
        if row.max_content_bytes is not None:
            entry["max_content_bytes"] = row.max_content_bytes
        if row.description:
            entry["description"] = row.description
        namespaces.append(entry)
    return {
        "namespaces": namespaces,
        "fields": [
            {"namespace": r.namespace, "field": r.field, "owners": r.owners} for r in FieldOwnership.objects.all()
        ],
        "deference": [
            {
                "resource": r.resource,
                "role": r.role,
                "defers_to": r.defers_to,
                "window_seconds": r.window_seconds,
            }
            for r in DeferenceRule.objects.all()
        ],
    }
