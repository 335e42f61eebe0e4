"""The load generator's loops for the floors (Django-free: they run in the load-generator processes).

HTTP loops hit the endpoints of floor.py; `raw_*` loops are the raw database doing the same kind of
statements from Python (psycopg, a connection per thread, no HTTP, no Django).
"""

from __future__ import annotations

import json

# --- HTTP floor scenarios -------------------------------------------------------------------------------


def floor_read(s) -> None:
    s.request("read", "GET", "/api/bench/floor/read/")


def floor_item_path(s) -> str:
    item = 0 if s.params.get("hot") else 1 + s.index
    return f"/api/bench/floor/items/{item}/"


def put_until_written(s, path: str, version: int, body: dict, *, op: str = "write") -> int:
    """PUT with If-Match; on 412 take the current version from the error and try again. Returns the
    version written. Shared by the hub and floor scenarios so both loops are the same shape."""
    while True:
        reply = s.request(op, "PUT", path, body, headers={"If-Match": f'"{version}"'}, ok=(200, 412))
        data = reply.json()
        if reply.status == 200:
            return data["version"]
        s.count("conflicts")
        version = data["error"]["details"]["current"]["version"]


def floor_rmw(s) -> None:
    """GET the item, then PUT it with If-Match (retrying on 412)."""
    path = floor_item_path(s)
    version = s.request("read", "GET", path).json()["version"]
    put_until_written(s, path, version, {"value": {"n": version, "by": s.agent["id"]}})


def floor_write(s) -> None:
    """Write-only loop: PUT with the version this agent last wrote (its own item, so no conflicts)."""
    path = floor_item_path(s)
    version = s.state.get("version")
    if version is None:
        version = s.request("read", "GET", path).json()["version"]
    s.state["version"] = put_until_written(s, path, version, {"value": {"by": s.agent["id"]}})


# --- raw database floors (no HTTP, no Django: psycopg in the load generator's threads) -------------------


def raw_versioned_write(s) -> None:
    """One transaction: the conditional version bump and one event row, as FloorItemView does."""
    db = s.db()
    item = 1 + s.index
    if "version" not in s.state:
        s.state["version"] = db.execute("SELECT version FROM bench_floor_item WHERE id = %s", [item]).fetchone()[0]

    def write():
        with db.transaction():
            row = db.execute(
                "UPDATE bench_floor_item SET version = version + 1, value = %s, updated_by = %s, updated_at = now() "
                "WHERE id = %s AND version = %s RETURNING version",
                [json.dumps({"by": s.agent["id"]}), s.agent["id"], item, s.state["version"]],
            ).fetchone()
            db.execute(
                "INSERT INTO bench_floor_event (type, resource, version, actor, payload) VALUES (%s, %s, %s, %s, %s)",
                ["item.updated", f"item/{item}", row[0], s.agent["id"], "{}"],
            )
        return row[0]

    s.state["version"] = s.timed("write", write)


def raw_versioned_write_seq(s) -> None:
    """The same, plus what the hub's event log does: take the global sequence row for the event's seq
    (held until commit). Shows what one log-wide seq costs in writes/s."""
    db = s.db()
    item = 1 + s.index
    if "version" not in s.state:
        s.state["version"] = db.execute("SELECT version FROM bench_floor_item WHERE id = %s", [item]).fetchone()[0]

    def write():
        with db.transaction():
            row = db.execute(
                "UPDATE bench_floor_item SET version = version + 1, value = %s, updated_by = %s, updated_at = now() "
                "WHERE id = %s AND version = %s RETURNING version",
                [json.dumps({"by": s.agent["id"]}), s.agent["id"], item, s.state["version"]],
            ).fetchone()
            seq = db.execute("UPDATE bench_floor_sequence SET last = last + 1 WHERE id = 1 RETURNING last").fetchone()
            db.execute(
                "INSERT INTO bench_floor_event (id, type, resource, version, actor, payload) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [seq[0] + 10_000_000_000, "item.updated", f"item/{item}", row[0], s.agent["id"], "{}"],
            )
        return row[0]

    s.state["version"] = s.timed("write", write)


def raw_lock_cycle(s) -> None:
    """Acquire (insert a lease row on a unique resource + event, commit), release (delete + event,
    commit): a claim cycle as the database sees it."""
    db = s.db()
    resource = f"floor:res-{s.index}"
    agent = s.agent["id"]

    def acquire():
        with db.transaction():
            lease = db.execute(
                "INSERT INTO bench_floor_lease (resource, holder, expires_at) VALUES (%s, %s, now() + interval '30 s') "
                "RETURNING id",
                [resource, agent],
            ).fetchone()[0]
            db.execute(
                "INSERT INTO bench_floor_event (type, resource, actor) VALUES ('lock.acquired', %s, %s)",
                [resource, agent],
            )
        return lease

    def release(lease):
        with db.transaction():
            db.execute("DELETE FROM bench_floor_lease WHERE id = %s AND holder = %s", [lease, agent])
            db.execute(
                "INSERT INTO bench_floor_event (type, resource, actor) VALUES ('lock.released', %s, %s)",
                [resource, agent],
            )

    lease = s.timed("acquire", acquire)
    s.timed("release", lambda: release(lease))


def raw_task_cycle(s) -> None:
    """Claim the oldest queued task (FOR UPDATE SKIP LOCKED) + event, commit; complete it + event, commit."""
    db = s.db()
    agent = s.agent["id"]
    role = s.params.get("role", "bench")

    def claim():
        with db.transaction():
            row = db.execute(
                "UPDATE bench_floor_task SET status = 'claimed', claimed_by = %s, claimed_at = now() "
                "WHERE id = (SELECT id FROM bench_floor_task WHERE role = %s AND status = 'queued' "
                "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
                [agent, role],
            ).fetchone()
            if row is not None:
                db.execute(
                    "INSERT INTO bench_floor_event (type, resource, actor) VALUES ('task.claimed', %s, %s)",
                    [f"task:{row[0]}", agent],
                )
        return row[0] if row else None

    def complete(task_id):
        with db.transaction():
            db.execute(
                "UPDATE bench_floor_task SET status = 'completed', result = %s WHERE id = %s AND claimed_by = %s "
                "AND status = 'claimed'",
                ['{"ok": true}', task_id, agent],
            )
            db.execute(
                "INSERT INTO bench_floor_event (type, resource, actor) VALUES ('task.completed', %s, %s)",
                [f"task:{task_id}", agent],
            )

    task_id = s.timed("claim", claim)
    if task_id is None:
        s.count("queue_empty")
        return 0
    s.timed("complete", lambda: complete(task_id))
    return None
