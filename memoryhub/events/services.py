"""Appending to the provenance log. Every service calls `events_append` inside its transaction,
after its other writes (the sequence row lock is then held only for the last moments before commit).
A record of something that changed nothing (a refused write) goes through `event_record`."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.search.tasks import embeddings_wanted

from .models import Event, EventSequence
from .publisher import publish_events

# Memory events that change content: search embeds the new version after commit.
CONTENT_TYPES = frozenset({"memory.created", "memory.updated", "memory.reverted"})

_idempotency_key: contextvars.ContextVar[str] = contextvars.ContextVar("idempotency_key", default="")


@contextmanager
def idempotency_scope(key: str) -> Iterator[None]:
    """Events appended inside carry the request's Idempotency-Key (set by the API adapter)."""
    token = _idempotency_key.set(key)
    try:
        yield
    finally:
        _idempotency_key.reset(token)


@dataclass(slots=True)
class NewEvent:
    type: str
    summary: str = ""
    namespace: str = ""
    resource: str = ""
    version: int | None = None
    before: Any = None
    after: Any = None
    reason: str = ""
    audience: list[str] = field(default_factory=list)
    actor: Actor | None = None  # defaults to the caller of events_append


def _next_seqs(count: int) -> int:
    """Reserve `count` seqs; returns the last. The row stays locked until this transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE events_eventsequence SET last = last + %s WHERE id = 1 RETURNING last", [count])
        row = cursor.fetchone()
    if row is not None:
        return row[0]
    # The row is created by a migration; a flushed test database needs it again.
    with transaction.atomic():
        top = Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        EventSequence.objects.get_or_create(id=1, defaults={"last": top})
    return _next_seqs(count)


def events_append(*, actor: Actor, events: Sequence[NewEvent]) -> list[Event]:
    if not connection.in_atomic_block:
        raise RuntimeError("events must be appended inside the transaction of the change they record")
    return _append(actor, events)


def event_record(*, actor: Actor, type: str, **fields: Any) -> Event:
    """Append an event that records no change (a refused write): in the caller's transaction if there
    is one, else in one of its own. On PostgreSQL that is the one statement in autocommit, which the
    server commits as it runs: the sequence row is held for that statement alone, not across the
    client's BEGIN and COMMIT round trips."""
    new = [NewEvent(type=type, **fields)]
    if connection.in_atomic_block:
        return events_append(actor=actor, events=new)[0]
    if connection.vendor == "postgresql":
        return _append(actor, new)[0]
    with transaction.atomic():
        return events_append(actor=actor, events=new)[0]


def _append(actor: Actor, events: Sequence[NewEvent]) -> list[Event]:
    key = _idempotency_key.get()
    rows = [
        Event(
            type=new.type,
            actor_kind=(new.actor or actor).kind,
            actor_id=(new.actor or actor).id,
            actor_role=(new.actor or actor).role,
            namespace=new.namespace,
            resource=new.resource,
            version=new.version,
            summary=new.summary[:500],
            before=new.before,
            after=new.after,
            reason=new.reason,
            idempotency_key=key,
            audience=new.audience,
        )
        for new in events
    ]
    if connection.vendor == "postgresql":
        _numbered_insert(rows)
    else:
        last = _next_seqs(len(rows))
        # Taken after the sequence lock, so `at` never goes backwards as seq goes forwards.
        now = timezone.now()
        for offset, row in enumerate(rows):
            row.seq, row.at = last - len(rows) + 1 + offset, now
        _insert(rows)
    for row in rows:
        row._state.adding = False  # they are stored now; Event.save() refuses to update them
    transaction.on_commit(lambda: publish_events(rows))
    if any(row.type in CONTENT_TYPES for row in rows):
        transaction.on_commit(embeddings_wanted)  # search: embed the new version, off the request path
    return rows


_COLUMNS = (
    "seq",
    "type",
    "at",
    "actor_kind",
    "actor_id",
    "actor_role",
    "namespace",
    "resource",
    "version",
    "summary",
    "before",
    "after",
    "reason",
    "idempotency_key",
    "audience",
)
# What each written column is cast to in the PostgreSQL statement's VALUES list (whose literals would
# otherwise all be text).
_PG_TYPES = {"version": "integer", "before": "jsonb", "after": "jsonb", "audience": "jsonb"}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, cls=DjangoJSONEncoder)


def _values(row: Event) -> list[Any]:
    """The row's values for every column after `seq` and `at`."""
    return [
        row.type,
        row.actor_kind,
        row.actor_id,
        row.actor_role,
        row.namespace,
        row.resource,
        row.version,
        row.summary,
        _json(row.before),
        _json(row.after),
        row.reason,
        row.idempotency_key,
        _json(row.audience),
    ]


_WRITTEN = [column for column in _COLUMNS if column not in ("seq", "at")]
_PG_ROW = "(%s, " + ", ".join(f"%s::{_PG_TYPES.get(c, 'text')}" for c in _WRITTEN) + ")"


def _numbered_insert(rows: list[Event]) -> None:
    """PostgreSQL: reserve the seqs and insert the events in one statement, one round trip. The
    sequence row stays locked until commit, so events commit in seq order; `at` is read once the lock
    is held, so it never goes backwards as seq goes forwards."""
    count = len(rows)
    params: list[Any] = [count]
    for offset, row in enumerate(rows, start=1):
        params += [offset, *_values(row)]
    sql = (
        "WITH s AS (UPDATE events_eventsequence SET last = last + %s WHERE id = 1"
        " RETURNING last, clock_timestamp() AS at)"
        f" INSERT INTO events_event (seq, at, {', '.join(_WRITTEN)})"
        f" SELECT s.last - {count} + v.i, s.at, {', '.join(f'v.{c}' for c in _WRITTEN)}"
        f" FROM s, (VALUES {', '.join([_PG_ROW] * count)}) AS v(i, {', '.join(_WRITTEN)})"
        " ORDER BY v.i RETURNING seq, at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        stored = sorted(cursor.fetchall())
    if not stored:
        _next_seqs(0)  # the sequence row is missing (a flushed test database): restore it, go again
        return _numbered_insert(rows)
    for row, (seq, at) in zip(rows, stored, strict=True):
        row.seq, row.at = seq, at


def _insert(rows: list[Event]) -> None:
    """INSERT the events in one hand-written statement: every write of the hub ends here, and the
    ORM's bulk_create costs about as much Python again as the round trip (measured), while this
    transaction holds the sequence row lock that every other writer waits for."""
    placeholder = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    at = connection.ops.adapt_datetimefield_value(rows[0].at)
    params: list[Any] = []
    for row in rows:
        params += [row.seq, row.type, at, *_values(row)[1:]]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO events_event ({', '.join(_COLUMNS)}) VALUES {', '.join([placeholder] * len(rows))}", params
        )


def event_append(*, actor: Actor, type: str, **fields: Any) -> Event:
    return events_append(actor=actor, events=[NewEvent(type=type, **fields)])[0]
