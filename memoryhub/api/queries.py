"""The idempotency records' statements: each a single round trip on the path of every keyed write.

The answer of a write is stored after its change committed (memoryhub/api/idempotency.py), in a
statement that on PostgreSQL commits without waiting for its WAL flush (`synchronous_commit` off for
that statement's own transaction alone). The change and its key's record were flushed together
before; a stored answer only saves rebuilding it, so a database crash losing the last moments of
these leaves a record without an answer, which a repeat rebuilds from the log. Waiting for a second
flush per keyed write cost more than the write itself on this host's disk (measured: a synchronous
commit 0.6-4 ms, one without 0.15-0.4 ms).

On PostgreSQL the key's record is inserted by the statement that appends the change's events
(`claim_cte`, in memoryhub/events/queries.py `numbered_insert`) rather than in a statement of its own:
one round trip fewer on every keyed write (measured: the separate INSERT cost 0.19 ms of the client's
CPU and 0.6 ms of wall time per write, the CTE 0.03 and 0.13)."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from .models import IdempotencyRecord

_TABLE = IdempotencyRecord._meta.db_table


def _no_flush_wait() -> str:
    """A condition that is always true and, evaluated in a statement run in autocommit on PostgreSQL,
    lets that statement's transaction commit without waiting for the disk. Raw SQL: the ORM cannot
    set a setting for one statement (SET LOCAL needs a transaction of its own: three round trips)."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return "set_config('synchronous_commit', 'off', true) = 'off'"
    return "1 = 1"


def record_insert(
    *,
    principal: str,
    key: str,
    fingerprint: str,
    token: str,
    status: int | None,
    body: bytes,
    content_type: str,
    durable: bool = True,
) -> bool:
    """Insert the record unless the key is taken; True when this inserted it. Raw SQL: the ORM's
    `bulk_create(ignore_conflicts=True)` does not say whether the row went in, and `create()` would
    turn the conflict into an IntegrityError that aborts the caller's transaction. On PostgreSQL a
    conflicting row not yet committed makes this wait for its transaction (then: taken, or free).
    `durable=False`: an answer, not a claim (see the module docstring)."""
    condition = "1 = 1" if durable else _no_flush_wait()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (principal, key, fingerprint, token, status_code, response_body, content_type,"
            f" created_at) SELECT %s, %s, %s, %s, %s, %s, %s, %s WHERE {condition}"
            " ON CONFLICT (principal, key) DO NOTHING RETURNING id",
            [principal, key, fingerprint, token, status, body, content_type, _now()],
        )
        return cursor.fetchone() is not None


def claim_cte(*, principal: str, key: str, fingerprint: str, token: str) -> tuple[str, list[object]]:
    """A data-modifying CTE, `k AS (...)`, that inserts the key's record (its answer not stored yet)
    unless the key is taken, returning the record's id when it did; and its params. Raw SQL: the ORM
    cannot put an INSERT in a CTE. A statement using it makes its other writes depend on it
    (`EXISTS (SELECT FROM k)`), so the record goes in (a conflicting row not yet committed waited for)
    before they run, and none of them runs when the key is taken."""
    return (
        f"k AS (INSERT INTO {_TABLE} (principal, key, fingerprint, token, status_code, response_body,"
        " content_type, created_at) VALUES (%s, %s, %s, %s, NULL, %s, '', %s)"
        " ON CONFLICT (principal, key) DO NOTHING RETURNING id)",
        [principal, key, fingerprint, token, b"", _now()],
    )


def answer_store(*, principal: str, key: str, token: str, status: int, body: bytes, content_type: str) -> bool:
    """Store the answer in the record `token` claimed, if it has none yet; True when it did."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET status_code = %s, response_body = %s, content_type = %s"
            f" WHERE principal = %s AND key = %s AND token = %s AND status_code IS NULL AND {_no_flush_wait()}",
            [status, body, content_type, principal, key, token],
        )
        return cursor.rowcount > 0


def _now():
    return connection.ops.adapt_datetimefield_value(timezone.now())
