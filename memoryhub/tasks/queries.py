"""The statements of tasks written out in SQL, each with why the ORM does not say it. Claims and
completions are compare-and-set UPDATEs whose `RETURNING` gives the row as written (no read-back,
one round trip: the ORM's update() returns a count only), and the claim's `SKIP LOCKED` subquery has
no ORM spelling inside an UPDATE. tests/test_queries.py runs each on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from memoryhub import sql

from .models import Task

_TASK_COLUMNS = sql.columns(Task)  # what sql.instances(Task, ...) reads


def _one(statement: str, params: list[Any]) -> Task | None:
    """The task an `UPDATE ... RETURNING` changed, if any: the row as written."""
    tasks = sql.instances(Task, statement, params)
    return tasks[0] if tasks else None


def lapsed_claims_exist(*, role: str, at: datetime) -> bool:
    """Whether any claim of the role has lapsed (the claim then requeues them first). Asked on every
    claim and almost always false: one index probe, written out so that no ORM query is compiled for
    it each time (the claim path's CPU is the cycle's cost: tests/bench/census.py)."""
    ((found,),) = sql.fetch(
        "SELECT EXISTS (SELECT 1 FROM tasks_task WHERE status = 'claimed' AND claim_expires_at <= %s AND role = %s)",
        [at, role],
    )
    return bool(found)


def claim_next(*, agent_id: str, role: str, kinds: list[str] | None, at: datetime, ttl: timedelta) -> Task | None:
    """Claim the best queued task in ONE statement: pick it (highest priority, then oldest, by the
    `task_queue_next` index), compare-and-set it to claimed, and return the row as it is now. On
    PostgreSQL `SKIP LOCKED` makes concurrent claimers pick different rows instead of queueing on the
    same one (a row another claimer just took fails the outer `status = 'queued'` check, never claimed
    twice); SQLite's IMMEDIATE transactions run claimers one at a time."""
    kind_filter = f" AND kind IN ({sql.placeholders(kinds)})" if kinds else ""
    statement = (
        "UPDATE tasks_task SET status = 'claimed', claimed_by_id = %s, claimed_at = %s, claim_expires_at = %s,"
        " attempts = attempts + 1, updated_at = %s"
        " WHERE status = 'queued' AND id = ("
        f"SELECT id FROM tasks_task WHERE status = 'queued' AND role = %s{kind_filter}"
        f" ORDER BY priority DESC, id LIMIT 1{sql.row_lock('FOR UPDATE SKIP LOCKED')})"
        f" RETURNING {_TASK_COLUMNS}"
    )
    return _one(statement, [agent_id, at, at + ttl, at, role, *(kinds or [])])


def claim_extend(*, task_id: int, agent_id: str, until: datetime, now: datetime) -> Task | None:
    """The claimer's heartbeat: its claim now runs until `until`; None if it is not its live claim.
    A lapsed claim stays `claimed` until the sweeper (or a claimer) requeues it: its holder, back
    from a stall, must not revive it (another agent may be about to take it)."""
    return _one(
        "UPDATE tasks_task SET claim_expires_at = %s, updated_at = %s"
        " WHERE id = %s AND status = 'claimed' AND claimed_by_id = %s AND claim_expires_at > %s"
        f" RETURNING {_TASK_COLUMNS}",
        [until, now, task_id, agent_id, now],
    )


def claim_complete(*, task_id: int, agent_id: str, completed_by: str, result: Any, now: datetime) -> Task | None:
    """Complete the task if `agent_id` holds its live claim (a lapsed one may already be someone
    else's work); the row as written, or None."""
    return _one(
        "UPDATE tasks_task SET status = 'completed', result = %s, error = '', completed_at = %s,"
        " completed_by = %s, claim_expires_at = NULL, updated_at = %s"
        " WHERE id = %s AND status = 'claimed' AND claimed_by_id = %s AND claim_expires_at > %s"
        f" RETURNING {_TASK_COLUMNS}",
        [
            Task._meta.get_field("result").get_db_prep_save(result, connection),
            now,
            completed_by,
            now,
            task_id,
            agent_id,
            now,
        ],
    )
