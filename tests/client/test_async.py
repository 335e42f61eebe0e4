"""AsyncHubClient: the same operations, awaited, against the real hub."""

from __future__ import annotations

import asyncio

import pytest

from memoryhub.client import AsyncHubClient, Event, LockHeld, NotFound, VersionConflict
from memoryhub.memories.models import Memory as MemoryRow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

LOCK = "memory:inventory:sku-1/count"


@pytest.fixture
def agents(connect):
    """Personas (with tokens) made synchronously; the async tests build their own clients."""

    def make(agent_id: str, role: str) -> str:
        return connect(agent_id, role).persona.token

    return make


def run(coroutine):
    return asyncio.run(coroutine)


def test_read_write_and_typed_errors(hub_url, agents):
    token = agents("docs-1", "docs")

    async def scenario():
        async with AsyncHubClient(hub_url, token=token) as hub:
            written = await hub.put("code:review", "pr-1", {"verdict": "pending"}, reason="start")
            read = await hub.get("code:review", "pr-1")
            with pytest.raises(VersionConflict) as refused:
                await hub.put("code:review", "pr-1", {"verdict": "x"}, version=7)
            with pytest.raises(NotFound):
                await hub.get("code:review", "absent")
            me = await hub.me()
            return written, read, refused.value, me

    written, read, conflict, me = run(scenario())
    assert written.version == read.version == 1
    assert read.content == {"verdict": "pending"}
    assert conflict.current.version == 1
    assert (me.id, me.role) == ("docs-1", "docs")


def test_concurrent_async_updates_end_with_the_exact_count(hub_url, agents):
    tokens = [agents(f"counter-{i}", "worker") for i in range(6)]

    async def worker(token: str) -> None:
        async with AsyncHubClient(hub_url, token=token) as hub:
            for _ in range(4):
                await hub.update("counter:stock", "sku-9", lambda c: {**c, "n": c.get("n", 0) + 1})

    async def scenario():
        await asyncio.gather(*(worker(token) for token in tokens))

    run(scenario())
    assert MemoryRow.objects.get(namespace="counter:stock", key="sku-9").content == {"n": 24}


def test_async_lock_fences_writes_and_releases_on_exit(hub_url, agents):
    inventory = agents("inventory-1", "inventory")
    orders = agents("orders-1", "orders")

    async def scenario():
        async with AsyncHubClient(hub_url, token=inventory) as hub, AsyncHubClient(hub_url, token=orders) as rival:
            async with hub.lock(LOCK, ttl=1, heartbeat_every=0.2) as lease:
                await hub.put("inventory:sku-1", "count", {"units": 5}, fencing_token=lease.fencing_token)
                await asyncio.sleep(1.5)  # past the TTL: the heartbeat task keeps it
                with pytest.raises(LockHeld):
                    await rival.acquire(LOCK, ttl=5, wait=0)
            taken = await rival.acquire(LOCK, ttl=5, wait=0)
            await taken.release()
            return lease, taken

    lease, taken = run(scenario())
    assert not lease.lost
    assert taken.fencing_token > lease.fencing_token


def test_async_inbox_tasks_and_activity(hub_url, agents):
    support = agents("support-1", "support")
    sales = agents("sales-1", "sales")
    lead = agents("lead-1", "lead")

    async def scenario():
        async with (
            AsyncHubClient(hub_url, token=support) as sup,
            AsyncHubClient(hub_url, token=sales) as sal,
            AsyncHubClient(hub_url, token=lead) as boss,
        ):
            await sup.put("customer:acme", "profile", {"health": "at_risk"}, reason="outage")
            await sup.send(to_role="sales", context_type="escalation", content={"c": "acme"}, subject="customer:acme")
            [entry] = await sal.inbox()
            receipt = await entry.ack(note="deferring")
            activity = await sal.activity("customer:acme")
            await boss.create_task("sales", "follow-up", {"c": "acme"})
            task = await sal.claim()
            done = await task.complete({"called": True})
            return receipt, activity, done

    receipt, activity, done = run(scenario())
    assert receipt.ack_note == "deferring"
    assert (activity.proceed, activity.defer_to) == (False, "support")
    assert done.status == "completed"


def test_async_events_resume_after_the_socket_drops(hub_url, agents):
    token = agents("docs-1", "docs")

    async def scenario():
        async with AsyncHubClient(hub_url, token=token) as hub:
            start = await hub.last_seq()
            stream = hub.events(since=start, namespaces=["code:*"])
            received: list[Event] = []
            await hub.put("code:review", "a", {"n": 1})
            received.append(await asyncio.wait_for(anext(stream), 10))
            stream._socket.transport.abort()  # the connection dies under the reader
            await hub.put("code:review", "b", {"n": 2})
            await hub.put("code:review", "c", {"n": 3})
            while len(received) < 3:
                received.append(await asyncio.wait_for(anext(stream), 10))
            await stream.aclose()
            return received, stream.connections

    received, connections = run(scenario())
    assert [e.resource for e in received] == ["code:review/a", "code:review/b", "code:review/c"]
    assert connections == 2
