"""What one request costs, counted rather than timed: SQL statements (and the transactions and
row-lock statements among them), Redis commands, and the in-process time of the request (Django's
test client, one thread, median of many) for each hub operation the benchmarks use, next to the floors.
Deterministic where the timed benchmarks on a shared host are not.

    python -m tests.bench.census [--repeat 200]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from .harness import config_from_env, configure_django

_redis_calls = threading.local()


@contextmanager
def counting_redis():
    """Count Redis commands from the sync client (cache, rate limits) and the async one (channel layer)."""
    import redis.asyncio.client as async_client
    import redis.client as sync_client

    counter = {"n": 0}
    originals = (sync_client.Redis.execute_command, async_client.Redis.execute_command)

    def sync_execute(self, *args, **options):
        counter["n"] += 1
        return originals[0](self, *args, **options)

    async def async_execute(self, *args, **options):
        counter["n"] += 1
        return await originals[1](self, *args, **options)

    sync_client.Redis.execute_command = sync_execute
    async_client.Redis.execute_command = async_execute
    try:
        yield counter
    finally:
        sync_client.Redis.execute_command, async_client.Redis.execute_command = originals


def measure(name: str, call: Callable[[], Any], repeat: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()  # warm: first-use imports, connection
    with CaptureQueriesContext(connection) as queries, counting_redis() as redis_calls:
        response = call()
        time.sleep(0.05)  # let the publisher's background loop run its sends
    statements = [query["sql"] for query in queries.captured_queries]
    upper = [sql.lstrip().upper() for sql in statements]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "name": name,
        "status": getattr(response, "status_code", None),
        "sql": len(statements),
        "writes": sum(1 for sql in upper if sql.startswith(("INSERT", "UPDATE", "DELETE"))),
        "locking": sum(1 for sql in upper if "FOR UPDATE" in sql or "EVENTSEQUENCE" in sql),
        "savepoints": sum(1 for sql in upper if "SAVEPOINT" in sql),
        "redis": redis_calls["n"],
        "ms_p50": statistics.median(times),
        "statements": statements,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.census")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--sql", action="store_true", help="print every statement of every operation")
    args = parser.parse_args(argv)
    # Its own database, and Redis left alone: a benchmark may be running meanwhile.
    config = config_from_env(database_suffix="_census", flush_redis=False)
    configure_django(config)

    from django.test import Client

    from memoryhub.actors import SYSTEM
    from memoryhub.memories.services import memory_put

    from . import bench_coordination, bench_memories
    from .harness import apply_policies, create_agents, reset_database

    reset_database(config)
    apply_policies(bench_memories.POLICIES)
    agent = create_agents("census", 1, bench_memories.ROLE)[0]
    worker = create_agents("census-worker", 1, bench_coordination.ROLE)[0]
    peer = create_agents("census-peer", 1, "census-peer")[0]
    memory_put(actor=SYSTEM, namespace="bench:keys", key="k0", content={"n": 0})
    bench_coordination.preload_tasks(args.repeat * 3 + 10)

    def client(token: str) -> Client:
        return Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    hub, work, other = client(agent["token"]), client(worker["token"]), client(peer["token"])
    json_type = "application/json"
    state: dict[str, Any] = {"floor_version": 1}

    def keyed() -> dict[str, str]:
        """The header memoryhub.client sends with every write: a fresh key per request."""
        return {"Idempotency-Key": f"census-{time.perf_counter_ns()}"}

    def memory_put_call(keys: bool = False):
        current = hub.get("/api/v1/memories/bench:keys/k0/").json()["version"]
        return hub.put(
            "/api/v1/memories/bench:keys/k0/",
            {"content": {"n": current}},
            content_type=json_type,
            headers={"If-Match": f'"{current}"'} | (keyed() if keys else {}),
        )

    def floor_put_call():
        response = hub.put(
            "/api/bench/floor/items/1/",
            {"value": {"n": 1}},
            content_type=json_type,
            headers={"If-Match": f'"{state["floor_version"]}"'},
        )
        state["floor_version"] = response.json()["version"]
        return response

    def lock_cycle():
        lease = work.post(
            "/api/v1/locks/",
            {"resources": ["census:res"], "mode": "exclusive", "ttl_seconds": 30},
            content_type=json_type,
        ).json()
        state["lease"] = lease["id"]
        return work.delete(
            f"/api/v1/locks/{lease['id']}/", {"holder_token": lease["holder_token"]}, content_type=json_type
        )

    def lock_acquire():
        response = work.post(
            "/api/v1/locks/",
            {"resources": ["census:res2"], "mode": "exclusive", "ttl_seconds": 30},
            content_type=json_type,
        )
        work.delete(
            f"/api/v1/locks/{response.json()['id']}/",
            {"holder_token": response.json()["holder_token"]},
            content_type=json_type,
        )
        return response

    def task_claim():
        response = work.post("/api/v1/tasks/claim/", {"ttl_seconds": 60}, content_type=json_type)
        state["task"] = response.json()["id"]
        return response

    def task_complete():
        task_claim()
        return work.post(f"/api/v1/tasks/{state['task']}/complete/", {"result": {"ok": True}}, content_type=json_type)

    def inbox_send(keys: bool = False):
        return other.post(
            "/api/v1/contexts/",
            {"to_role": bench_memories.ROLE, "context_type": "note", "content": {"n": 1}},
            content_type=json_type,
            headers=keyed() if keys else {},
        )

    def inbox_ack():
        entry = inbox_send().json()["id"]
        return hub.post("/api/v1/inbox/ack/", {"ids": [entry]}, content_type=json_type)

    from django.test import override_settings

    flooder = client(create_agents("census-flooder", 1, bench_memories.ROLE)[0]["token"])

    def over_its_rate():
        with override_settings(MEMORYHUB_RATE_LIMIT="1/hour"):  # the first call is let in, then 429
            return flooder.get("/api/v1/memories/bench:keys/k0/")

    stranger = Client()

    def bad_token(limit: str):
        def call():
            with override_settings(MEMORYHUB_AUTH_FAILURE_LIMIT=limit):
                return stranger.get(
                    "/api/v1/memories/bench:keys/k0/", headers={"Authorization": f"Bearer mh_{time.perf_counter_ns()}"}
                )

        return call

    operations: list[tuple[str, Callable[[], Any], int]] = [
        ("floor read (token lookup)", lambda: hub.get("/api/bench/floor/read/"), 1),
        ("memory GET", lambda: hub.get("/api/v1/memories/bench:keys/k0/"), 1),
        ("floor versioned PUT", floor_put_call, 1),
        ("memory GET + PUT If-Match", memory_put_call, 2),
        ("memory GET + PUT, keyed", lambda: memory_put_call(keys=True), 2),
        ("lock POST (acquire) + DELETE", lock_acquire, 2),
        ("lock acquire + release cycle", lock_cycle, 2),
        ("task claim", task_claim, 1),
        ("task claim + complete", task_complete, 2),
        ("inbox send", inbox_send, 1),
        ("inbox send, keyed", lambda: inbox_send(keys=True), 1),
        ("inbox fetch (unread)", lambda: hub.get("/api/v1/inbox/?state=unread&limit=100"), 1),
        ("inbox send + bulk ack", inbox_ack, 2),
        ("refused: over its rate (429)", over_its_rate, 1),
        ("unknown token (401)", bad_token("off"), 1),
        # Last: the address is then over its failure limit, and tokens not seen before are refused.
        ("refused: unknown token, failing address", bad_token("1/hour"), 1),
    ]
    rows = []
    for name, call, requests in operations:
        try:
            row = measure(name, call, args.repeat)
        except Exception as exc:  # an endpoint still being built: say so, keep going
            print(f"{name}: failed: {type(exc).__name__}: {exc}")
            continue
        row["requests"] = requests
        rows.append(row)
    print(f"\nper operation (requests in the operation; in-process median of {args.repeat}):\n")
    header = f"{'operation':32} {'req':>3} {'status':>6} {'SQL':>4} {'writes':>6} {'locks':>5} {'svpt':>4} {'redis':>5} {'ms p50':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['name']:32} {row['requests']:>3} {row['status']!s:>6} {row['sql']:>4} {row['writes']:>6} "
            f"{row['locking']:>5} {row['savepoints']:>4} {row['redis']:>5} {row['ms_p50']:>7.2f}"
        )
    print(
        "\nSQL: statements sent, BEGIN and COMMIT included; writes: INSERT/UPDATE/DELETE; locks: FOR UPDATE or "
        "the event-sequence row; svpt: savepoints; redis: commands (rate limits and channel layer). "
        "Time: this process alone, no HTTP server; --sql lists the statements."
    )
    if args.sql:
        for row in rows:
            print(f"\n== {row['name']} ==")
            for sql in row["statements"]:
                print("  " + sql[:220])


if __name__ == "__main__":
    main()
