"""Lost updates, for real: 20 threads doing read-modify-write through the REST API against the real
database (SQLite file in WAL + IMMEDIATE mode by default, PostgreSQL when DATABASE_URL is set)."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from memoryhub.memories.models import Memory

from .conftest import put, url

THREADS = 20
INCREMENTS = 5


def run_threads(target, count: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapper(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def in_transaction(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() == ("idle in transaction",)


def blocked_by(pid: int, timeout: float = 10.0) -> bool:
    """True once some session waits for a lock that the session `pid` holds (PostgreSQL's own view,
    not a guess from how long a thread has been running); False after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [pid])
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


@contextmanager
def holding(change: Callable[[], None]) -> Iterator[int]:
    """Run `change()` in a transaction on another thread (and connection), kept open with its row locks
    until the block ends; yields that session's backend pid."""
    held, release, pid = threading.Event(), threading.Event(), []

    def hold(_index: int) -> None:
        with transaction.atomic():
            pid.append(backend_pid())
            change()
            held.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=run_threads, args=(hold, 1))
    holder.start()
    assert held.wait(timeout=10)
    try:
        yield pid[0]
    finally:
        release.set()
        holder.join(timeout=10)


def start_waiting(write: Callable[[], object], *, holder: int, why: str) -> tuple[threading.Thread, dict]:
    """Run `write()` in a thread; return once PostgreSQL shows it waiting for a lock the `holder`
    session holds, with no answer yet. The answer lands in the returned dict's "response"."""
    answer: dict = {}
    thread = threading.Thread(target=run_threads, args=(lambda _index: answer.update(response=write()), 1))
    thread.start()
    assert blocked_by(holder), why
    assert not answer, "answered while the holder still held the row"
    return thread, answer


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def counters(transactional_db, policies, make_agent):
    return [make_agent(f"counter-{i}", "worker") for i in range(THREADS)]


@pytest.mark.django_db(transaction=True)
def test_twenty_agents_incrementing_with_if_match_retry_lose_nothing(counters):
    put(counters[0], "counter:stock", "sku-42", {"n": 0})
    start = threading.Barrier(THREADS)
    conflicts = []

    def agent_loop(index: int) -> None:
        client = client_for(counters[index].token)
        start.wait()  # everyone reads the same first version
        done = 0
        while done < INCREMENTS:
            current = client.get(url("counter:stock", "sku-42")).json()
            response = client.put(
                url("counter:stock", "sku-42"),
                json.dumps({"content": {"n": current["content"]["n"] + 1}}),
                content_type="application/json",
                HTTP_IF_MATCH=f'"{current["version"]}"',
            )
            if response.status_code == 412:
                conflicts.append(index)
                continue
            assert response.status_code == 200, response.content
            done += 1

    assert run_threads(agent_loop, THREADS) == []
    memory = Memory.objects.get(namespace="counter:stock", key="sku-42")
    assert memory.content == {"n": THREADS * INCREMENTS}
    assert memory.version == 1 + THREADS * INCREMENTS
    assert conflicts, "the barrier makes at least the first round conflict"


@pytest.mark.django_db(transaction=True)
def test_naive_writes_in_a_last_write_wins_namespace_do_lose_updates(counters):
    """The control experiment: the same increments without If-Match. All read 0, all write 1."""
    put(counters[0], "scratch:stock", "sku-42", {"n": 0})
    read_done = threading.Barrier(THREADS)

    def agent_once(index: int) -> None:
        client = client_for(counters[index].token)
        current = client.get(url("scratch:stock", "sku-42")).json()
        read_done.wait()  # every agent has read before any writes: the classic race, made certain
        response = client.put(
            url("scratch:stock", "sku-42"),
            json.dumps({"content": {"n": current["content"]["n"] + 1}}),
            content_type="application/json",
        )
        assert response.status_code == 200

    assert run_threads(agent_once, THREADS) == []
    memory = Memory.objects.get(namespace="scratch:stock", key="sku-42")
    assert memory.version == 1 + THREADS  # every write landed...
    assert memory.content == {"n": 1}  # ...and 19 of the 20 increments are lost


@pytest.mark.django_db(transaction=True)
def test_racing_creators_make_one_memory_and_the_rest_get_a_clear_answer(counters):
    start = threading.Barrier(THREADS)
    statuses = []

    def create(index: int) -> None:
        client = client_for(counters[index].token)
        start.wait()
        response = client.put(
            url("counter:new", "k"),
            json.dumps({"content": {"by": index}}),
            content_type="application/json",
            HTTP_IF_NONE_MATCH="*",
        )
        statuses.append(response.status_code)

    assert run_threads(create, THREADS) == []
    assert sorted(statuses) == [201] + [412] * (THREADS - 1)
    assert Memory.objects.get(namespace="counter:new").version == 1


@pytest.mark.django_db(transaction=True)
def test_a_stale_write_fails_at_once_while_another_writer_holds_the_memory(counters):
    """While a writer holds the row, a write whose If-Match is already stale gets its 412 without
    queueing behind it; a write whose If-Match is current waits, then gets the answer the commit
    decides."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises whole write transactions; there is no row to wait on")
    from memoryhub.memories.selectors import fetch_memory

    client = client_for(counters[0].token)
    for version in (None, 1):
        response = put(client, "counter:shared", "n", {"n": version or 0}, version=version)
        assert response.status_code in (200, 201), response.content

    with holding(lambda: fetch_memory("counter:shared", "n", for_update=True)) as holder:
        stale = put(client, "counter:shared", "n", {"n": 9}, version=1)  # at version 2 already
        assert stale.status_code == 412
        assert in_transaction(holder)  # answered while the row was still held
        assert stale.json()["error"]["details"]["current"]["version"] == 2
        current, waiting = start_waiting(
            lambda: put(client_for(counters[1].token), "counter:shared", "n", {"n": 3}, version=2),
            holder=holder,
            why="a write with the current version waits for the holder's row lock",
        )
    current.join(timeout=10)
    assert (
        waiting["response"].status_code == 200 and Memory.objects.get(namespace="counter:shared", key="n").version == 3
    )


@pytest.mark.django_db(transaction=True)
def test_a_conditional_write_fails_when_the_memory_expires_under_it(counters):
    """A conditional write reads the row unlocked and updates it only if it is still as read. A task's
    completion expires its working memory without a new version: a write that read the memory before
    and updates it after gets 412 (the memory is gone), never a write into an expired memory."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises whole write transactions; nothing can change under a write")
    from django.utils import timezone

    client = client_for(counters[0].token)
    assert put(client, "counter:shared", "n", {"n": 0}).status_code == 201
    expire = Memory.objects.filter(namespace="counter:shared", key="n")

    with holding(lambda: expire.update(expires_at=timezone.now())) as holder:
        # It reads version 1, live (the expiry is not committed yet), and waits at its UPDATE.
        writer, written = start_waiting(
            lambda: put(client, "counter:shared", "n", {"n": 1}, version=1),
            holder=holder,
            why="the write waits at its UPDATE for the expiring transaction",
        )
    writer.join(timeout=10)
    response = written["response"]
    assert response.status_code == 412, response.content
    assert response.json()["error"]["details"]["current"] is None
    memory = Memory.objects.get(namespace="counter:shared", key="n")
    assert (memory.version, memory.content) == (1, {"n": 0})


@pytest.mark.django_db(transaction=True)
def test_a_write_already_stale_is_refused_without_a_transaction(counters):
    """A conditional write reads the row before opening a transaction: one already stale gets its 412
    and its `conflict.rejected` record without one. On PostgreSQL the record is a single statement in
    autocommit, so the log's sequence row is held for that statement only (not across BEGIN and
    COMMIT round trips); on SQLite it commits in a short transaction of its own."""
    from memoryhub.events.models import Event

    client = client_for(counters[0].token)
    assert put(client, "counter:shared", "n", {"n": 0}).status_code == 201
    assert put(client, "counter:shared", "n", {"n": 1}, version=1).status_code == 200
    seen: list[tuple[str, bool]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        stale = put(client, "counter:shared", "n", {"n": 9}, version=1)
    assert stale.status_code == 412
    refused = Event.objects.get(type="conflict.rejected")
    assert (refused.actor_id, refused.resource) == ("counter-0", "counter:shared/n")
    assert refused.seq == Event.objects.latest("seq").seq
    fetch = [inside for sql, inside in seen if "FROM memories_memory" in sql]
    assert fetch == [False], seen  # the read: outside any transaction
    append = [inside for sql, inside in seen if "INSERT INTO events_event" in sql]
    assert append == [connection.vendor != "postgresql"], seen
    memory = Memory.objects.get(namespace="counter:shared", key="n")
    assert (memory.version, memory.content) == (2, {"n": 1})
