"""`/metrics` without counting whole tables: on PostgreSQL triggers keep a tally of live memories,
tasks by status and the embedding backlog, on every path that changes rows (services, bulk updates,
purges, concurrent writers), folded when connections go; the answer is always the count. On SQLite
the selectors count, and the same assertions hold."""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from memoryhub.actors import SYSTEM
from memoryhub.memories.models import Memory
from memoryhub.memories.selectors import memories_live
from memoryhub.memories.services import memory_delete, memory_put
from memoryhub.search.models import Pending
from memoryhub.search.services import embedding_backlog
from memoryhub.search.tasks import embeddings_idle
from memoryhub.tallies.models import Tally
from memoryhub.tallies.services import tallies_fold, tallies_recount
from memoryhub.tasks.models import Task, TaskStatus
from memoryhub.tasks.selectors import tasks_by_status
from memoryhub.tasks.services import claims_requeue_expired, task_claim, task_complete, task_create
from tests.conftest import on_postgres


def counted() -> dict:
    by_status = {status: Task.objects.filter(status=status).count() for status in TaskStatus.values}
    return {
        "live": Memory.objects.filter(deleted_at=None).count(),
        "tasks": by_status,
        "pending": Pending.objects.count(),
    }


def backends() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity")
        return {pid for (pid,) in cursor.fetchall()}


def tallied() -> dict:
    return {"live": memories_live(), "tasks": tasks_by_status(), "pending": embedding_backlog()}


def test_live_memories_follow_writes_deletes_bulk_updates_and_purges(policies):
    for key in ("a", "b", "c", "d"):
        memory_put(actor=SYSTEM, namespace="scratch:tally", key=key, content={"k": key})
    memory_put(actor=SYSTEM, namespace="scratch:tally", key="a", content={"k": "again"})  # an update: no change
    assert tallied() == counted() and memories_live() == 4
    memory_delete(actor=SYSTEM, namespace="scratch:tally", key="a")
    assert tallied() == counted() and memories_live() == 3
    Memory.objects.filter(key__in=["b", "c"]).update(deleted_at=timezone.now())  # a bulk expiry
    assert tallied() == counted() and memories_live() == 1
    Memory.objects.filter(key__in=["a", "b"]).delete()  # purging deleted rows changes nothing live
    Memory.objects.filter(key="d").delete()
    assert tallied() == counted() and memories_live() == 0
    memory_put(actor=SYSTEM, namespace="scratch:tally", key="c", content={"k": "back"})  # a deleted one rewritten
    assert tallied() == counted() and memories_live() == 1
    if on_postgres():
        assert Tally.objects.filter(name="memories.live").exists()


def test_tasks_by_status_follow_every_transition(policies, make_agent):
    sales, worker = make_agent("sales-1", "sales"), make_agent("worker-1", "worker")
    for n in range(4):
        task_create(actor=sales.actor, role="worker", kind="index", payload={"n": n})
    assert tasks_by_status() == counted()["tasks"] == {**dict.fromkeys(TaskStatus.values, 0), "queued": 4}
    first = task_claim(actor=worker.actor, ttl_seconds=30).task
    second = task_claim(actor=worker.actor, ttl_seconds=30).task
    task_complete(actor=worker.actor, task_id=first.id, result={"ok": True})
    assert tallied() == counted()
    Task.objects.filter(id=second.id).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    assert claims_requeue_expired(now=timezone.now()) == 1  # claimed -> queued, by the sweeper
    assert tallied() == counted()
    Task.objects.filter(status="queued").update(status="cancelled")  # a bulk update, outside any service
    Task.objects.filter(id=first.id).delete()
    assert tallied() == counted()
    assert tasks_by_status() == {**dict.fromkeys(TaskStatus.values, 0), "cancelled": 3}


def test_the_embedding_backlog_follows_writes_and_the_embedder(policies):
    for key in ("a", "b"):
        memory_put(actor=SYSTEM, namespace="scratch:tally", key=key, content={"k": key})
    memory_put(actor=SYSTEM, namespace="scratch:tally", key="a", content={"k": "v2"})  # still one pending row
    assert tallied() == counted() and embedding_backlog() == 2
    Pending.objects.filter(memory__key="a").delete()  # embedded, as the worker does
    assert tallied() == counted() and embedding_backlog() == 1
    Memory.objects.filter(key="b").delete()  # cascades to its pending row
    assert tallied() == counted() and embedding_backlog() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_every_tally_exact_and_folding_keeps_the_totals(policies, make_agent):
    sales, worker = make_agent("sales-1", "sales"), make_agent("worker-1", "worker")
    errors: list[BaseException] = []
    writers: set[int] = set()  # the backends the threads used (the pool may share them)

    def work(index: int) -> None:
        try:
            for n in range(10):
                memory_put(actor=SYSTEM, namespace=f"scratch:t{index}", key=f"k{n}", content={"n": n})
                task_create(actor=sales.actor, role="worker", kind="index", payload={"n": n})
            for n in range(0, 10, 3):
                memory_delete(actor=SYSTEM, namespace=f"scratch:t{index}", key=f"k{n}")
                claimed = task_claim(actor=worker.actor, ttl_seconds=30).task
                task_complete(actor=worker.actor, task_id=claimed.id, result={})
        except BaseException as error:
            errors.append(error)
        finally:
            if on_postgres():
                writers.add(connection.connection.info.backend_pid)
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert embeddings_idle(30)  # the in-process embedder empties search_pending meanwhile
    expected = {"live": 8 * 6, "tasks": {**dict.fromkeys(TaskStatus.values, 0), "queued": 8 * 6, "completed": 8 * 4}}
    assert {key: counted()[key] for key in expected} == expected
    assert tallied() == counted()
    if on_postgres():
        assert writers <= set(Tally.objects.values_list("shard", flat=True))  # each writer had rows of its own


def unpooled():
    """A PostgreSQL connection of its own, whose backend exits when it closes (the hub's are pooled)."""
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"],
        autocommit=True,
    )


@pytest.mark.skipif(not on_postgres(), reason="SQLite keeps no tallies: it counts")
@pytest.mark.django_db(transaction=True)
def test_folding_moves_the_rows_of_gone_connections_into_shard_0_and_keeps_the_totals(policies, make_agent):
    for key in ("a", "b", "c"):
        memory_put(actor=SYSTEM, namespace="scratch:tally", key=key, content={"k": key})
    task_create(actor=make_agent("sales-1", "sales").actor, role="worker", kind="index", payload={})
    with unpooled() as other:  # a bulk expiry and a cancellation made by a connection that then goes
        gone = other.info.backend_pid
        other.execute("UPDATE memories_memory SET deleted_at = now() WHERE key IN ('a', 'b')")
        other.execute("UPDATE tasks_task SET status = 'cancelled'")
    assert Tally.objects.filter(shard=gone).count() == 3  # memories.live, tasks.queued, tasks.cancelled
    deadline = time.monotonic() + 10
    while gone in backends() and time.monotonic() < deadline:  # closed: its backend is exiting
        time.sleep(0.05)
    assert embeddings_idle(30)
    before = tallied()
    assert before == counted()
    assert tallies_fold() == 3
    assert not Tally.objects.filter(shard=gone).exists()
    assert tallied() == before == counted()
    assert tallies_fold() == 0  # the rest belong to connections still open


@pytest.mark.skipif(not on_postgres(), reason="SQLite keeps no tallies: it counts")
@pytest.mark.django_db(transaction=True)
def test_folding_never_waits_for_a_row_a_writer_holds(policies):
    """A new connection may reuse a gone one's pid and be updating its row as the sweeper folds:
    the fold leaves that row for the next time instead of waiting for the writer."""
    gone = 2**31 - 1  # no backend has this pid
    Tally.objects.create(name="memories.live", shard=gone, n=5)
    Tally.objects.create(name="tasks.queued", shard=gone, n=2)
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(
                    "SELECT n FROM tallies_tally WHERE name = 'memories.live' AND shard = %s FOR UPDATE", [gone]
                )
                held.set()
                release.wait(30)
                cursor.execute("COMMIT")
        finally:
            other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert held.wait(30)
    try:
        connection.cursor().execute("SET lock_timeout = '2s'")  # a fold that waited would fail here
        assert tallies_fold() == 1  # tasks.queued only
        assert Tally.objects.get(name="memories.live", shard=gone).n == 5
        assert Tally.objects.get(name="tasks.queued", shard=0).n == 2
    finally:
        release.set()
        thread.join(30)
        connection.cursor().execute("SET lock_timeout = 0")
    assert tallies_fold() == 1
    assert not Tally.objects.filter(shard=gone).exists()
    assert Tally.objects.get(name="memories.live", shard=0).n == 5


@pytest.mark.skipif(not on_postgres(), reason="SQLite keeps no tallies: it counts")
def test_a_recount_after_a_load_that_bypassed_the_triggers(policies):
    memory_put(actor=SYSTEM, namespace="scratch:tally", key="a", content={"k": "a"})
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE memories_memory DISABLE TRIGGER USER")
        cursor.execute(
            "INSERT INTO memories_memory (namespace, key, kind, content, version, size_bytes, created_by, updated_by,"
            " created_at, updated_at, reason, fencing_token, superseded_by, verified_by)"
            " SELECT 'scratch:load', 'k' || i, 'semantic', '{}', 1, 2, 'w', 'w', now(), now(), '', 0, '', 'w'"
            " FROM generate_series(1, 5) AS i"
        )
        cursor.execute("ALTER TABLE memories_memory ENABLE TRIGGER USER")
    assert memories_live() == 1 != counted()["live"]
    tallies_recount()
    assert tallied() == counted() and memories_live() == 6


@pytest.mark.skipif(not on_postgres(), reason="SQLite keeps no tallies: its per-row triggers write no shared row")
def test_bulk_statements_note_their_versions_once_per_statement(policies):
    """A million-row INSERT must not fire the backlog's tally a million times (each firing updated one
    row: a million versions of it in one transaction, found by walking them). 300 rows in, then 100
    new versions, then a touch that changes neither: three firings of each trigger function, and the
    backlog holds every memory at its newest version."""

    def calls() -> dict[str, int]:
        cursor.execute(
            "SELECT funcname, calls FROM pg_stat_xact_user_functions"
            " WHERE funcname IN ('search_pending_note_rows', 'search_pending_note', 'tally_search_pending')"
        )
        return dict(cursor.fetchall())

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL track_functions = 'pl'")  # counts in this (the test's) transaction
        cursor.execute(
            "INSERT INTO memories_memory (namespace, key, kind, content, version, size_bytes, created_by, updated_by,"
            " created_at, updated_at, reason, fencing_token, superseded_by, verified_by)"
            " SELECT 'scratch:bulk', 'k' || i, 'semantic', '{}', 1, 2, 'w', 'w', now(), now(), '', 0, '', 'w'"
            " FROM generate_series(1, 300) AS i"
        )
        cursor.execute(
            "UPDATE memories_memory SET content = '{\"v\": 2}', version = 2"
            " WHERE namespace = 'scratch:bulk' AND substr(key, 2)::int <= 100"
        )
        cursor.execute("UPDATE memories_memory SET reason = 'touched' WHERE namespace = 'scratch:bulk'")
        assert calls() == {"search_pending_note_rows": 3, "tally_search_pending": 3}
    pending = dict(Pending.objects.filter(memory__namespace="scratch:bulk").values_list("memory__key", "version"))
    assert pending == {f"k{i}": 2 if i <= 100 else 1 for i in range(1, 301)}
    assert tallied() == counted() and embedding_backlog() == 300
