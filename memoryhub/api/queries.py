"""The idempotency records' statements. Each is one round trip on the hot path of every keyed write."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from .models import IdempotencyRecord

_TABLE = IdempotencyRecord._meta.db_table


def record_insert(
    *, principal: str, key: str, fingerprint: str, token: str, status: int | None, body: bytes, content_type: str
) -> bool:
    """Insert the record unless the key is taken; True when this inserted it. Raw SQL: the ORM's
    `bulk_create(ignore_conflicts=True)` does not say whether the row went in, and `create()` would
    turn the conflict into an IntegrityError that aborts the caller's transaction. On PostgreSQL a
    conflicting row not yet committed makes this wait for its transaction (then: taken, or free)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (principal, key, fingerprint, token, status_code, response_body, content_type,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (principal, key) DO NOTHING RETURNING id",
            [principal, key, fingerprint, token, status, body, content_type, _now()],
        )
        return cursor.fetchone() is not None


def _now():
    return connection.ops.adapt_datetimefield_value(timezone.now())
