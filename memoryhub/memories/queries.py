"""The statements of memories written out in SQL, each with why the ORM does not say it: the row read
and the row write run on every memory request, and compiling an ORM query for them cost more CPU than
the database's work (tests/bench/census.py: in-process time per request). Measured again in one run
(2026-12-02, gunicorn sync, memories suite, 2 rounds, memory reads of 16 keys as a ratio of the
token-lookup floor): this statement 71 % / 84 %, `Memory.objects.filter(...).first()` 48 % / 38 %.
tests/test_queries.py runs each on both databases."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from memoryhub import sql

from .models import Memory

_FETCH_MEMORY = f'SELECT {sql.columns(Memory)} FROM memories_memory WHERE namespace = %s AND "key" = %s'


def fetch_memory(namespace: str, key: str, *, for_update: bool = False) -> Memory | None:
    """The row at (namespace, key), tombstones included. The hub's hottest query, written out (a
    unique-index lookup) so no ORM query is compiled for it on every request."""
    statement = _FETCH_MEMORY + (sql.row_lock("FOR UPDATE") if for_update else "")
    memories = sql.instances(Memory, statement, [namespace, key])
    return memories[0] if memories else None


# What a write changes in an existing row (all but id, namespace and key).
_SAVED_FIELDS = [field for field in Memory._meta.concrete_fields if field.name not in ("id", "namespace", "key")]
_UPDATE_SQL = "UPDATE memories_memory SET {} WHERE id = %s".format(
    ", ".join(f'"{field.column}" = %s' for field in _SAVED_FIELDS)
)
# ... only if the row is still as it was read: every write and expiry bumps the version, and a task's
# completion sets expires_at on its working memory.
_UPDATE_IF_UNCHANGED_SQL = _UPDATE_SQL + " AND version = %s AND expires_at IS NOT DISTINCT FROM %s"


def memory_save_existing(memory: Memory, *, unchanged_since: tuple[int, datetime | None] | None = None) -> bool:
    """The UPDATE of the row, written out: the hottest write of the hub, and Model.save() compiles
    the same statement anew each time. With `unchanged_since` (the version and expiry it was read
    at, unlocked), only if the row is still so; False if it is not."""
    params = [field.get_db_prep_save(getattr(memory, field.attname), connection) for field in _SAVED_FIELDS]
    params.append(memory.pk)
    statement = _UPDATE_SQL
    if unchanged_since is not None:
        version, expires_at = unchanged_since
        statement = _UPDATE_IF_UNCHANGED_SQL
        params += [version, connection.ops.adapt_datetimefield_value(expires_at)]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount == 1


def memories_expire_namespace_tree(*, namespace: str, at: datetime) -> int:
    """Live memories in `namespace` or below it (`namespace:...`) expire at `at`; how many. Run by
    every task completion (a task's working memory ends with it), written out so that no ORM query is
    compiled for it each time. `_` is a LIKE wildcard and may appear in names: escaped."""
    pattern = namespace.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"
    return sql.execute(
        "UPDATE memories_memory SET expires_at = %s WHERE (namespace = %s OR namespace LIKE %s ESCAPE '\\')"
        " AND deleted_at IS NULL AND (expires_at IS NULL OR expires_at > %s)",
        [at, namespace, pattern, at],
    )
