"""The statements of the log written out in SQL, each with why the ORM does not say it. Every write
of the hub ends in these while its transaction holds the sequence row, the one global serialisation
point: on PostgreSQL one statement reserves the seqs and inserts the events (a data-modifying CTE, one
round trip); elsewhere the ORM's bulk_create cost about as much Python again as the round trip
(measured, see `insert`). tests/test_queries.py runs each on both databases."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction

from memoryhub.api.queries import claim_cte

from .models import Event, EventSequence

if TYPE_CHECKING:
    from memoryhub.api.idempotency import Claim


def next_seqs(count: int) -> int:
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
    return next_seqs(count)


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
    "namespaces",
)
# What each written column is cast to in the PostgreSQL statement's VALUES list (whose literals would
# otherwise all be text).
_PG_TYPES = {"version": "integer", "before": "jsonb", "after": "jsonb", "audience": "jsonb", "namespaces": "jsonb"}


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
        _json(row.namespaces),
    ]


_WRITTEN = [column for column in _COLUMNS if column not in ("seq", "at")]
_PG_ROW = "(%s, " + ", ".join(f"%s::{_PG_TYPES.get(c, 'text')}" for c in _WRITTEN) + ")"


def numbered_insert(rows: list[Event], *, claim: Claim | None = None) -> bool:
    """PostgreSQL: reserve the seqs and insert the events in one statement, one round trip. The
    sequence row stays locked until commit, so events commit in seq order; `at` is read once the lock
    is held, so it never goes backwards as seq goes forwards.

    With `claim` (a keyed request's), the same statement first inserts the key's record
    (memoryhub/api/idempotency.py): the seqs are reserved only once the record is in, so a duplicate
    waits for the key's holder without holding the sequence row, and a key already taken reserves
    and inserts nothing. Returns False then (the caller decides: its own record, or KeyTaken); True
    when the events are in."""
    count = len(rows)
    params: list[Any] = []
    claimed, condition = "", ""
    if claim is not None:
        cte, params = claim_cte(
            principal=claim.principal, key=claim.key, fingerprint=claim.fingerprint, token=claim.token
        )
        claimed, condition = f"{cte}, ", " AND EXISTS (SELECT FROM k)"
    params.append(count)
    for offset, row in enumerate(rows, start=1):
        params += [offset, *_values(row)]
    inserted = (
        f"INSERT INTO events_event (seq, at, {', '.join(_WRITTEN)})"
        f" SELECT s.last - {count} + v.i, s.at, {', '.join(f'v.{c}' for c in _WRITTEN)}"
        f" FROM s, (VALUES {', '.join([_PG_ROW] * count)}) AS v(i, {', '.join(_WRITTEN)})"
        " ORDER BY v.i RETURNING seq, at"
    )
    sql = (
        f"WITH {claimed}s AS (UPDATE events_eventsequence SET last = last + %s WHERE id = 1{condition}"
        " RETURNING last, clock_timestamp() AS at)"
    )
    if claim is None:
        sql += f" {inserted}"
    else:
        # A row of NULLs says the key was taken (no events were inserted): nothing at all says the
        # sequence row is missing.
        sql += f", e AS ({inserted}) SELECT seq, at FROM e UNION ALL SELECT NULL, NULL WHERE NOT EXISTS (SELECT FROM k)"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        stored = cursor.fetchall()
    if stored == [(None, None)]:
        return False
    if not stored:
        next_seqs(0)  # the sequence row is missing (a flushed test database): restore it, go again
        return numbered_insert(rows)  # (the key's record went in: this statement inserted it)
    for row, (seq, at) in zip(rows, sorted(stored), strict=True):
        row.seq, row.at = seq, at
    return True


def insert(rows: list[Event]) -> None:
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
