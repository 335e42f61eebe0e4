"""Lost updates, for real: 20 threads doing read-modify-write through the REST API against the real
database (SQLite file in WAL + IMMEDIATE mode by default, PostgreSQL when DATABASE_URL is set)."""

import json
import threading

import pytest
from django.db import connection
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
    from django.db import transaction

    from memoryhub.memories.selectors import fetch_memory

    client = client_for(counters[0].token)
    for version in (None, 1):
        response = put(client, "counter:shared", "n", {"n": version or 0}, version=version)
        assert response.status_code in (200, 201), response.content
    holding, release = threading.Event(), threading.Event()

    def hold_the_row(_index: int) -> None:
        with transaction.atomic():
            fetch_memory("counter:shared", "n", for_update=True)
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=run_threads, args=(hold_the_row, 1))
    holder.start()
    assert holding.wait(timeout=10)
    try:
        stale = put(client, "counter:shared", "n", {"n": 9}, version=1)  # at version 2 already
        assert stale.status_code == 412
        assert holder.is_alive()  # answered while the row was still held
        assert stale.json()["error"]["details"]["current"]["version"] == 2
        waiting: dict = {}

        def write_current(_index: int) -> None:
            waiting["response"] = put(client_for(counters[1].token), "counter:shared", "n", {"n": 3}, version=2)

        current = threading.Thread(target=run_threads, args=(write_current, 1))
        current.start()
        current.join(timeout=0.5)
        assert current.is_alive(), "a write with the current version waits for the holder"
    finally:
        release.set()
        holder.join(timeout=10)
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
    from django.db import transaction
    from django.utils import timezone

    client = client_for(counters[0].token)
    assert put(client, "counter:shared", "n", {"n": 0}).status_code == 201
    holding, release = threading.Event(), threading.Event()

    def expire_under_the_writer(_index: int) -> None:
        with transaction.atomic():
            Memory.objects.filter(namespace="counter:shared", key="n").update(expires_at=timezone.now())
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=run_threads, args=(expire_under_the_writer, 1))
    holder.start()
    assert holding.wait(timeout=10)
    written: dict = {}

    def write(_index: int) -> None:  # reads version 1, live (the expiry is not committed yet)
        written["response"] = put(client, "counter:shared", "n", {"n": 1}, version=1)

    writer = threading.Thread(target=run_threads, args=(write, 1))
    writer.start()
    writer.join(timeout=0.5)
    assert writer.is_alive(), "the write waits at its UPDATE for the expiring transaction"
    release.set()
    holder.join(timeout=10)
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
