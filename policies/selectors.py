"""Reading policies from the database into the pure PolicySet that policies.decide works on."""

from __future__ import annotations

from memoryhub.actors import Actor
from memoryhub.context import Caller

from . import queries
from .decide import DeferRule, FieldRule, NamespaceRule, PolicySet
from .models import DeferenceRule, FieldOwnership, NamespacePolicy
from .services import LIFECYCLE_FIELDS


def _namespace_rule(row: NamespacePolicy) -> NamespaceRule:
    return NamespaceRule(
        pattern=row.pattern,
        readers=tuple(row.readers),
        writers=tuple(row.writers),
        write_mode=row.write_mode,
        default_ttl_seconds=row.default_ttl_seconds,
        max_content_bytes=row.max_content_bytes,
        stale_after_seconds=row.stale_after_seconds,
        episodic_summarize_after_seconds=row.episodic_summarize_after_seconds,
        summarizer=row.summarizer,
        recency_half_life_seconds=row.recency_half_life_seconds,
    )


# (position in the log, policies) per process; see policy_set.
_cached: tuple[tuple, PolicySet] | None = None

# The position while no policy was ever changed (no policy.changed event): a position like any other.
NO_CHANGE_YET = (0, None)


def policy_position(seq=None, at=None) -> tuple:
    """A log position as `policy_set(position=...)` takes it, from the two POSITION_COLUMNS values."""
    return (seq, at) if seq is not None else NO_CHANGE_YET


def _policy_log_position() -> tuple:
    return queries.newest_policy_change() or NO_CHANGE_YET


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


def policy_set(*, position: tuple | None = None) -> PolicySet:
    """The policies as of `position` in the log (one a query made anyway has read, see
    POSITION_COLUMNS), or as of now. A change applies at once: the position of the newest policy
    change is one indexed query, and the three tables are reloaded only when it moved (in any
    process), instead of on every request."""
    global _cached
    position = position if position is not None else _policy_log_position()
    if _cached is not None and _cached[0] == position:
        return _cached[1]
    loaded = _load()
    _cached = (position, loaded)
    return loaded


def policies_for(actor: Actor) -> PolicySet:
    """The policies a service applies to this caller: those its request started with, or (a bare
    Actor: a task, a command) the current ones."""
    return actor.policies if isinstance(actor, Caller) else policy_set()


def caller_for(actor: Actor, *, position: tuple | None = None, any_hold: bool | None = None) -> Caller:
    """The request context of an actor whose request starts now (see memoryhub.context)."""
    return Caller(
        kind=actor.kind, id=actor.id, role=actor.role, policies=policy_set(position=position), any_hold=any_hold
    )


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
        for name in LIFECYCLE_FIELDS:
            if getattr(row, name):
                entry[name] = getattr(row, name)
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
