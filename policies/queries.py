"""The statements of policies written out in SQL. tests/test_queries.py runs each on both databases."""

from __future__ import annotations

from django.db import connection

# Every policy change appends one `policy.changed` event in its own transaction, so while the newest
# one is unchanged the stored policies are too. `at` is part of the key because a seq can be handed
# out again after a rollback (or in a flushed test database).
_NEWEST = "SELECT {} FROM events_event WHERE type = 'policy.changed' ORDER BY seq DESC LIMIT 1"
POSITION_SQL = _NEWEST.format("seq, at")
# The same as two scalar subqueries, for a query made anyway (the token lookup) to carry along.
POSITION_COLUMNS = f"({_NEWEST.format('seq')}) AS policy_seq, ({_NEWEST.format('at')}) AS policy_at"


def newest_policy_change() -> tuple | None:
    """(seq, at) of the newest `policy.changed` event (an index-only read on (type, seq)), or None."""
    with connection.cursor() as cursor:
        cursor.execute(POSITION_SQL)
        row = cursor.fetchone()
    return tuple(row) if row else None
