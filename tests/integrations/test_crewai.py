"""HubStorage driven by CrewAI's own Memory class (a deterministic embedder, no LLM call: scope,
categories and importance are given), and HubLockBackend through CrewAI's lock store."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from memoryhub.locks.models import Lease as LeaseRow
from tests.integrations.conftest import require, unique

require("crewai", "crewai")

from crewai import Memory  # noqa: E402
from crewai.memory.storage.backend import StorageBackend  # noqa: E402
from crewai_core import lock_store  # noqa: E402

from memoryhub.integrations.crewai import HubLockBackend, HubStorage  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

WORDS = ["acme", "renewal", "outage", "invoice", "warehouse", "march"]


def embed(texts: list[str]) -> list[list[float]]:
    """Bag of known words, plus a hash dimension so no vector is zero: deterministic, no model."""
    return [
        [float(text.lower().count(word)) for word in WORDS] + [hashlib.sha256(text.encode()).digest()[0] / 2550]
        for text in texts
    ]


def test_crewais_memory_remembers_recalls_and_forgets_through_the_hub(agent):
    namespace = unique("counter:crew")
    storage = HubStorage(agent("crew-1", "crew"), namespace=namespace)
    assert isinstance(storage, StorageBackend)
    # No LLM: every field is given, and consolidation (an LLM call on near-duplicates) is off.
    memory = Memory(storage=storage, embedder=embed, llm="none", consolidation_threshold=1.0)
    memory.remember("Acme renewal is in March", scope="/customers/acme", categories=["sales"], importance=0.9)
    memory.remember("Outage at the warehouse", scope="/ops", categories=["incident"], importance=0.7)
    memory.remember("Acme invoice sent", scope="/customers/acme", categories=["billing"], importance=0.4)
    memory.drain_writes()

    found = memory.recall("acme renewal march", depth="shallow", limit=2)
    assert found[0].record.content == "Acme renewal is in March"
    assert storage.list_scopes("/") == ["/customers", "/ops"]
    assert storage.count("/customers") == 2 and storage.count() == 3
    assert storage.list_categories("/customers") == {"sales": 1, "billing": 1}
    info = storage.get_scope_info("/customers")
    assert info.record_count == 2 and info.child_scopes == ["/customers/acme"]

    # Another agent's storage over the same namespace sees the same records.
    other = HubStorage(agent("crew-2", "crew"), namespace=namespace)
    record = found[0].record
    assert other.get_record(record.id).content == record.content
    other.update(record.model_copy(update={"content": "Acme renewal moved to April"}))
    assert storage.get_record(record.id).content == "Acme renewal moved to April"

    assert storage.delete(scope_prefix="/ops") == 1
    memory.reset()
    assert storage.count() == 0


def test_crewais_lock_store_takes_hub_leases_one_holder_at_a_time(agent):
    backend = HubLockBackend(agent("crew-1", "crew"), ttl=10)
    other = HubLockBackend(agent("crew-2", "crew"), ttl=10)
    lock_store.set_lock_backend(backend)
    try:
        with lock_store.lock("chromadb init"):  # CrewAI's own lock(), through the backend
            lease = LeaseRow.objects.get(agent_id="crew-1", released_at=None)
            assert lease.resources == ["crewai:lock:chromadb.20init"] and lease.fencing_token > 0
            with pytest.raises(TimeoutError), other("chromadb init", timeout=0.5):
                pass
        lease.refresh_from_db()
        assert lease.release_reason == "released"  # released when the block ended
        inside: list[str] = []
        errors: list[BaseException] = []

        def hold(name: str, client: HubLockBackend) -> None:
            try:
                with client("shared"):
                    inside.append(f"{name}+")
                    time.sleep(0.3)
                    inside.append(f"{name}-")
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=hold, args=(n, c)) for n, c in (("a", backend), ("b", other))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert inside in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])  # never both inside
    finally:
        lock_store.set_lock_backend(None)
