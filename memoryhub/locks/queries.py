"""The statements of locks written out in SQL, each with why the ORM does not say it.

Lock acquisition, release and the per-write lease and hold checks run on every request under load;
the ORM's query building costs more CPU than the database's work there (tests/bench/census.py counts
statements and in-process time per request). Measured again in one run (2026-12-02, gunicorn sync,
coordination suite, 2 rounds each, ratio of the lock cycle's write requests to the DRF write floor):
these statements 48 % / 47 %, the same through the ORM (select_for_update().order_by() with a
Subquery, select_related, .first()) 45 % / 38 %. tests/test_queries.py runs each on both databases.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.utils import timezone

from memoryhub import sql

from .models import Hold, Lease
from .waiting import NOTIFY_SQL, announce_release

_LEASE_COLUMNS = sql.columns(Lease)  # what sql.instances(Lease, ...) reads
_LEASE_COLUMNS_L = sql.columns(Lease, "l")
_HOLD_COLUMNS = sql.columns(Hold)

# Read by the token lookup of every REST request (agents/authentication.py), so that the request's
# hold checks need no query while no hold is in place (the usual case).
ANY_HOLD_COLUMN = "EXISTS (SELECT 1 FROM locks_hold WHERE lifted_at IS NULL) AS any_hold"


def hold_on_any(names: list[str]) -> Hold | None:
    """The oldest hold in place on one of these exact names. Asked on every memory write by an agent
    while some hold is in place anywhere (written out: census, see above)."""
    holds = sql.instances(
        Hold,
        f"SELECT {_HOLD_COLUMNS} FROM locks_hold WHERE lifted_at IS NULL"
        f" AND resource IN ({sql.placeholders(names)}) ORDER BY placed_at LIMIT 1",
        names,
    )
    return holds[0] if holds else None


def exclusive_lease_on(resource: str) -> Lease | None:
    """The unexpired exclusive lease on a resource (expired leases are free at once). Asked on every
    write to a `locked` namespace; "one_exclusive_holder" makes it one row."""
    leases = sql.instances(
        Lease,
        f"SELECT {_LEASE_COLUMNS_L} FROM locks_leaseresource r JOIN locks_lease l ON l.id = r.lease_id"
        " WHERE r.resource = %s AND r.active AND r.mode = 'exclusive' AND l.expires_at > %s",
        [resource, timezone.now()],
    )
    return leases[0] if leases else None


def resources_lock(names: list[str], *, covering: list[str]) -> tuple[set[str], int | None]:
    """Row-lock the LockResource rows of `names` in name order (the global order: callers asking for
    [a, b] and [b, a] queue on `a` instead of each holding one and waiting for the other). Returns the
    names locked and the id of a hold in place on one of `covering`, read in the same statement (one
    round trip less per acquisition) while the rows are ours. Rows that do not exist yet are not
    returned: the caller creates them outside its transaction and tries again."""
    rows = sql.fetch(
        "SELECT name, (SELECT id FROM locks_hold WHERE lifted_at IS NULL"
        f" AND resource IN ({sql.placeholders(covering)}) ORDER BY placed_at LIMIT 1)"
        f" FROM locks_lockresource WHERE name IN ({sql.placeholders(names)})"
        f" ORDER BY name{sql.row_lock('FOR UPDATE OF locks_lockresource')}",
        [*covering, *names],
    )
    return {name for name, _ in rows}, (rows[0][1] if rows else None)


def holdings_of(names: list[str]) -> list[tuple[Lease, str, str]]:
    """The active LeaseResource rows on these names with their leases: (lease, resource, mode). A
    separate statement from the row locks, so that it sees every grant committed while the caller
    queued on them."""
    return [
        (lease, resource, mode)
        for lease, (resource, mode) in sql.instances_and_extras(
            Lease,
            f"SELECT {_LEASE_COLUMNS_L}, r.resource, r.mode"
            " FROM locks_leaseresource r JOIN locks_lease l ON l.id = r.lease_id"
            f" WHERE r.active AND r.resource IN ({sql.placeholders(names)}) ORDER BY r.resource, r.lease_id",
            names,
        )
    ]


def lease_insert(lease: Lease, *, waited_ms: int | None) -> int:
    """Write a granted lease: its row, with its id as its fencing token, one LeaseResource row per
    resource (the partial unique index "one_exclusive_holder" backs the conflict check in the
    database) and the resources' counters (`waited_ms`: the grant waited that long). Returns the
    lease id. The caller holds the resource rows."""
    names = lease.resources
    columns = "agent_id, mode, resources, ttl_seconds, acquired_at, expires_at, holder_digest, depth, release_reason"
    lease_params = [
        lease.agent_id,
        lease.mode,
        Lease._meta.get_field("resources").get_db_prep_save(names, connection),
        lease.ttl_seconds,
        lease.acquired_at,
        lease.expires_at,
        lease.holder_digest,
    ]
    counters = "acquired_count = acquired_count + 1"
    counter_params: list[int] = []
    if waited_ms is not None:
        counters += ", waited_count = waited_count + 1, wait_ms_total = wait_ms_total + %s"
        counter_params = [int(waited_ms)]
    count = f"UPDATE locks_lockresource SET {counters} WHERE name IN ({sql.placeholders(names)})"
    held_rows = ", ".join(["(%s)"] * len(names))
    if connection.vendor == "postgresql":
        # The writes in one statement (one round trip): the id is drawn once and is also the fencing
        # token; data-modifying CTEs all run, the resource rows get the id through RETURNING.
        ((lease_id,),) = sql.fetch(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('locks_lease', 'id')) AS id),"
            f" lease AS (INSERT INTO locks_lease (id, fencing_token, {columns})"
            " SELECT n.id, n.id, %s, %s, %s::jsonb, %s, %s, %s, %s, 1, '' FROM n RETURNING id),"
            " held AS (INSERT INTO locks_leaseresource (lease_id, resource, mode, active)"
            f" SELECT lease.id, v.column1, %s, true FROM lease, (VALUES {held_rows}) AS v),"
            f" counted AS ({count})"
            " SELECT id FROM lease",
            [*lease_params, lease.mode, *names, *counter_params, *names],
        )
        return lease_id
    ((lease_id,),) = sql.fetch(
        f"INSERT INTO locks_lease (fencing_token, {columns}) VALUES (0, %s, %s, %s, %s, %s, %s, %s, 1, '')"
        " RETURNING id",
        lease_params,
    )
    sql.execute("UPDATE locks_lease SET fencing_token = id WHERE id = %s", [lease_id])
    sql.execute(
        "INSERT INTO locks_leaseresource (lease_id, resource, mode, active)"
        f" SELECT %s, v.column1, %s, true FROM (VALUES {held_rows}) AS v",
        [lease_id, lease.mode, *names],
    )
    sql.execute(count, [*counter_params, *names])
    return lease_id


def lease_end_last_level(*, agent_id: str, digest: str, lease_id: int, now: datetime) -> Lease | None:
    """Compare-and-set: end the lease if `agent_id` holds it with the holder token whose digest is
    `digest`, it is live and this is its last level;
    free its resources and wake their waiters. Returns the lease as written (`RETURNING`, no
    read-back), or None for every other case (not the holder, lapsed, already released, re-entered),
    which the caller sorts out under the row lock."""
    end = (
        "UPDATE locks_lease SET depth = 0, released_at = %s, release_reason = 'released'"
        " WHERE id = %s AND agent_id = %s AND holder_digest = %s AND depth = 1 AND released_at IS NULL"
        " AND expires_at > %s"
        f" RETURNING {_LEASE_COLUMNS}"
    )
    params = [now, lease_id, agent_id, digest, now]
    if connection.vendor == "postgresql":
        # One round trip for the three: a data-modifying CTE runs whether or not the outer query reads
        # it, and the NOTIFY is evaluated only for a lease actually ended (sent at commit, as always).
        leases = sql.instances(
            Lease,
            f"WITH lease AS ({end}), freed AS (UPDATE locks_leaseresource SET active = false"
            " WHERE lease_id IN (SELECT id FROM lease) AND active)"
            f" SELECT {_LEASE_COLUMNS}, {NOTIFY_SQL} FROM lease",
            params,
        )
        if leases:
            announce_release(leases[0].resources, notify_sent=True)
    else:
        leases = sql.instances(Lease, end, params)
        if leases:
            sql.execute("UPDATE locks_leaseresource SET active = false WHERE lease_id = %s AND active", [leases[0].id])
            announce_release(leases[0].resources)
    return leases[0] if leases else None
