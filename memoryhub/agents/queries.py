"""The statements of agents written out in SQL, each with why the ORM does not say it.
tests/test_queries.py runs each on both databases."""

from __future__ import annotations

from typing import Any

from memoryhub import sql
from memoryhub.locks.queries import ANY_HOLD_COLUMN
from policies.queries import POSITION_COLUMNS

from .models import Agent

# Every request runs this: one indexed join, written out so no ORM query is compiled per request.
# It also reads the position of the newest policy change, at which the request's policies are then
# taken without asking again, and whether any hold is in place, which the request's hold checks then
# need not ask while none is.
_AGENT_FOR_TOKEN = f"""
    SELECT {sql.columns(Agent, "a")}, {POSITION_COLUMNS}, {ANY_HOLD_COLUMN}
    FROM agents_agenttoken t JOIN agents_agent a ON a.id = t.agent_id
    WHERE t.digest = %s AND t.revoked_at IS NULL
"""


def agent_for_digest(digest: str) -> list[tuple[Agent, tuple[Any, ...]]]:
    """The agent of an unrevoked token, with (policy seq, policy at, any hold) read along."""
    return sql.instances_and_extras(Agent, _AGENT_FOR_TOKEN, [digest])


def agent_status_locked(agent_id: str) -> str | None:
    """The agent's status, its row locked until the transaction ends (None: no such agent). FOR NO KEY
    UPDATE, which the ORM's select_for_update(no_key=True) also says, but through a queryset compiled
    on every acquisition and claim; this does not block the rows that reference the agent (its
    leases, its claims)."""
    rows = sql.fetch(f"SELECT status FROM agents_agent WHERE id = %s{sql.row_lock('FOR NO KEY UPDATE')}", [agent_id])
    return rows[0][0] if rows else None
