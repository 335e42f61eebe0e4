"""The statements of the inbox written out in SQL, each with the measured reason beside it (send,
fetch and ack are the inbox's hot loop: tests/bench/bench_inbox.py). tests/test_queries.py runs each
on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connection

from memoryhub import sql
from memoryhub.errors import Invalid

from .models import ContextEntry

INBOX_STATES: tuple[str, ...] = ("unread", "unacked", "all")
MAX_PAGE = 500


# The send's row writes, hand-written: the ORM's create() and a separate SELECT of the role's members
# cost a round trip and ~1 ms of Python each. Receipts are made by one INSERT ... SELECT over the
# addressed agents as of this transaction (for a role: its members but the sender).
_INSERT_ENTRY = (
    "INSERT INTO contexts_contextentry (from_agent_id, from_role, sender, to_role, to_agent_id, namespace, "
    "context_type, subject, content, requires_ack, reply_to_id, thread_id, created_at, expires_at, expired_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL) RETURNING id"
)
_INSERT_RECEIPTS = (
    "INSERT INTO contexts_receipt (entry_id, agent_id, read_at, acked_at, ack_note, entry_expired, requires_ack) "
    "SELECT {entry_id}, a.id, NULL, NULL, '', FALSE, %s FROM {entry}agents_agent a WHERE {addressed}"
)
_ROLE_MEMBERS = "a.role = %s AND a.id <> %s"
_ONE_AGENT = "a.id = %s"


def entry_insert_with_receipts(entry: ContextEntry) -> int:
    """Insert the entry (setting its id) and its receipts; returns how many receipts were made."""
    ops = connection.ops
    values = [
        entry.from_agent_id,
        entry.from_role,
        entry.sender,
        entry.to_role,
        entry.to_agent_id,
        entry.namespace,
        entry.context_type,
        entry.subject,
        ContextEntry._meta.get_field("content").get_db_prep_save(entry.content, connection),
        entry.requires_ack,
        entry.reply_to_id,
        entry.thread_id,
        ops.adapt_datetimefield_value(entry.created_at),
        ops.adapt_datetimefield_value(entry.expires_at),
    ]
    addressed, who = (
        (_ROLE_MEMBERS, [entry.requires_ack, entry.to_role, entry.from_agent_id or ""])
        if entry.to_role
        else (_ONE_AGENT, [entry.requires_ack, entry.to_agent_id])
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One round trip: both inserts in one statement (a data-modifying CTE).
            receipts = _INSERT_RECEIPTS.format(entry_id="e.id", entry="e, ", addressed=addressed)
            cursor.execute(
                f"WITH e AS ({_INSERT_ENTRY}), r AS ({receipts} RETURNING 1) SELECT e.id, (SELECT count(*) FROM r) FROM e",
                values + who,
            )
            entry.id, made = cursor.fetchone()
        else:  # SQLite (>= 3.35 for RETURNING): two statements
            cursor.execute(_INSERT_ENTRY, values)
            entry.id = cursor.fetchone()[0]
            cursor.execute(_INSERT_RECEIPTS.format(entry_id="%s", entry="", addressed=addressed), [entry.id, *who])
            made = cursor.rowcount
    entry._state.adding, entry._state.db = False, connection.alias
    return made


# The inbox page is one hand-written statement: the ORM spelling (a correlated-subquery alias, then
# `in_bulk` of the entries) cost ~2 ms of Python per request to build and compile, several times the
# query itself, and a second round trip. The receipt side walks one partial index of (agent, entry):
# unread / unacked / any, not swept as expired, from `since` on, in entry order, and stops when the
# page is full, so the cost grows with the page, not with the tables.
_INBOX_STATE_SQL = {"unread": "AND r.read_at IS NULL", "unacked": "AND r.acked_at IS NULL", "all": ""}
_INBOX_COLUMNS = (
    "e.id, e.from_agent_id, e.from_role, e.sender, e.to_role, e.to_agent_id, e.namespace, e.context_type, "
    "e.subject, e.content, e.requires_ack, e.reply_to_id, e.thread_id, e.created_at, e.expires_at, e.expired_at, "
    "r.agent_id, r.read_at, r.acked_at, r.ack_note"
)
# Each receipt's entry is looked up by primary key. On PostgreSQL the lookup is a LATERAL subquery
# behind `OFFSET 0`, which the planner may not flatten into a join: as a plain join it may pick a
# merge join that walks the entry table from its start for an agent with a large backlog (measured:
# 100 ms instead of 1 ms at 1M entries). SQLite only plans nested loops, so a plain join is the same.
_INBOX_ENTRY_JOIN = {
    "postgresql": "CROSS JOIN LATERAL (SELECT * FROM contexts_contextentry x WHERE x.id = r.entry_id OFFSET 0) e",
}
_INBOX_ENTRY_JOIN_DEFAULT = "JOIN contexts_contextentry e ON e.id = r.entry_id"


def aware(value: datetime | None) -> datetime | None:
    """A datetime read with a raw cursor as the ORM would return it: SQLite hands over naive UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def inbox_query(
    *, agent_id: str, state: str, context_type: str | None, since: int, limit: int, now: datetime
) -> tuple[str, list[Any]]:
    """The SQL and parameters of one inbox page (see inbox_list)."""
    if state not in INBOX_STATES:
        raise Invalid(f"state must be one of {', '.join(INBOX_STATES)}", state=["invalid choice"])
    params: list[Any] = [agent_id, since, connection.ops.adapt_datetimefield_value(now)]
    type_sql = ""
    if context_type:
        type_sql = "AND e.context_type = %s"
        params.append(context_type)
    params.append(min(max(limit, 1), MAX_PAGE))
    sql = (
        f"SELECT {_INBOX_COLUMNS} FROM contexts_receipt r "
        f"{_INBOX_ENTRY_JOIN.get(connection.vendor, _INBOX_ENTRY_JOIN_DEFAULT)} "
        f"WHERE r.agent_id = %s AND NOT r.entry_expired AND r.entry_id > %s {_INBOX_STATE_SQL[state]} "
        f"AND (e.expires_at IS NULL OR e.expires_at > %s) {type_sql} "
        "ORDER BY r.entry_id LIMIT %s"
    )
    return sql, params


def receipts_ack(
    receipt_ids: list[int], note: str, now: datetime
) -> dict[int, tuple[datetime | None, datetime | None]]:
    """Ack the receipts not acked yet (compare-and-set on acked_at); returns {id: (read_at, acked_at)}
    of those this call changed, as written. Acking implies reading: read_at keeps its first value, or
    becomes now. Hand-written for RETURNING, which saves re-reading the rows."""
    placeholders = ", ".join(["%s"] * len(receipt_ids))
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE contexts_receipt SET acked_at = %s, ack_note = %s, read_at = COALESCE(read_at, %s) "
            f"WHERE acked_at IS NULL AND id IN ({placeholders}) RETURNING id, read_at, acked_at",
            [at, note, at, *receipt_ids],
        )
        return {row[0]: (aware(row[1]), aware(row[2])) for row in cursor.fetchall()}


# The bulk ack's locking read, hand-written: the ORM spelling (select_for_update of=, select_related)
# cost ~1.5 ms of Python to compile. It locks the receipts only (`OF r`, not the joined entries, which
# the sweeper locks first) and in (agent, entry) order, the order the sweeper locks receipts in: a bulk
# ack and a sweep never wait on each other in a cycle (tests/contexts/test_concurrency.py races them).
# SQLite has no row locks; its IMMEDIATE transactions serialise writers instead.
_BULK_ACK_SELECT = (
    "SELECT r.id, r.entry_id, r.read_at, r.acked_at, r.ack_note, r.entry_expired, "
    "e.namespace, e.sender, e.from_agent_id "
    "FROM contexts_receipt r JOIN contexts_contextentry e ON e.id = r.entry_id "
    "WHERE r.agent_id = %s AND r.entry_id IN ({ids}) ORDER BY r.entry_id"
)


def receipts_lock_for_ack(*, agent_id: str, entry_ids: list[int]) -> list[tuple[Any, ...]]:
    """The agent's receipts of these entries with what the ack needs of each entry, row-locked."""
    statement = _BULK_ACK_SELECT.format(ids=sql.placeholders(entry_ids))
    if connection.features.has_select_for_update:
        statement += " FOR NO KEY UPDATE OF r"
    return sql.fetch(statement, [agent_id, *entry_ids])
