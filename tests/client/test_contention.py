"""Lost updates through the client: threads (each its own agent) call update() on one key at once."""

from __future__ import annotations

import pytest

from memoryhub.client import HubClient
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory as MemoryRow

from .conftest import run_threads

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

THREADS = 8
INCREMENTS = 5


def test_concurrent_updates_on_one_key_end_with_the_exact_count(hub_url, connect):
    agents = [connect(f"counter-{i}", "worker") for i in range(THREADS)]
    agents[0].put("counter:stock", "sku-42", {"n": 0})

    def work(index: int) -> None:
        with HubClient(hub_url, token=agents[index].persona.token) as hub:
            for _ in range(INCREMENTS):
                hub.update("counter:stock", "sku-42", lambda c: {**c, "n": c["n"] + 1}, reason="sold one")

    assert run_threads(work, THREADS) == []
    memory = MemoryRow.objects.get(namespace="counter:stock", key="sku-42")
    assert memory.content == {"n": THREADS * INCREMENTS}
    assert memory.version == 1 + THREADS * INCREMENTS
    # The race really happened: stale writes were refused and retried, none was lost.
    assert Event.objects.filter(type="conflict.rejected", resource="counter:stock/sku-42").exists()


def test_concurrent_creators_of_an_absent_key_all_count(hub_url, connect):
    agents = [connect(f"creator-{i}", "worker") for i in range(THREADS)]

    def work(index: int) -> None:
        with HubClient(hub_url, token=agents[index].persona.token) as hub:
            hub.update("counter:visits", "home", lambda c: {"n": c.get("n", 0) + 1})

    assert run_threads(work, THREADS) == []
    assert MemoryRow.objects.get(namespace="counter:visits", key="home").content == {"n": THREADS}
