"""CrewAI's unified memory and lock store on memoryhub. `pip install memoryhub[crewai]` (in an
environment of its own: crewai pins mcp<2 and openai<3, so it cannot share one with the mcp extra).

    from crewai import Memory
    from crewai_core.lock_store import set_lock_backend
    from memoryhub.client import HubClient
    from memoryhub.integrations.crewai import HubLockBackend, HubStorage

    hub = HubClient(URL, token=TOKEN)
    memory = Memory(storage=HubStorage(hub, namespace="crew:memory"), embedder=my_embedder)
    set_lock_backend(HubLockBackend(hub))     # CrewAI's named locks become hub leases

HubStorage keeps each MemoryRecord as one hub memory in `namespace` (key: the record id, escaped),
with its scope, categories and embedding in the content; every write names the token's agent in the
hub's log and goes through the hub's versions (a read, then a write over the version read). Search
ranks the stored embeddings by cosine similarity to CrewAI's query embedding here, in the client
(CrewAI brings its own embedder; the hub's search embeds text with its own).

HubLockBackend: `lock(name, timeout=...)` takes an exclusive hub lease on `crewai:lock:<name>`
(waiting up to `timeout`, 30 s per request), heartbeats it while held and releases it after; a
crashed holder's lease expires after `ttl` seconds. The lease (with its fencing token) is what the
`with` block gets."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from crewai.memory.types import MemoryRecord, ScopeInfo

from memoryhub.client import HubClient, LockHeld, NotFound
from memoryhub.client.models import Lease

from . import _names

MAX_WAIT = 30.0  # the hub's longest wait per lock request


def _in_scope(scope: str, prefix: str | None) -> bool:
    if not prefix or prefix == "/":
        return True
    prefix = prefix.rstrip("/")
    return scope == prefix or scope.startswith(prefix + "/")


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _record(content: dict[str, Any]) -> MemoryRecord:
    record = MemoryRecord.model_validate(content)
    record.embedding = content.get("embedding")
    return record


class HubStorage:
    """CrewAI's `StorageBackend` over a `HubClient`."""

    def __init__(self, hub: HubClient | None = None, *, namespace: str = "crewai:memory") -> None:
        self.hub = hub or HubClient()
        self.namespace = namespace

    # --- reading ---------------------------------------------------------------------------------

    def _records(self) -> list[MemoryRecord]:
        return [_record(m.content) for m in self.hub.all_memories(namespace=self.namespace) if m.content]

    def _matching(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> list[MemoryRecord]:
        return [
            record
            for record in self._records()
            if _in_scope(record.scope, scope_prefix)
            and (not categories or set(categories) & set(record.categories))
            and all(record.metadata.get(k) == v for k, v in (metadata_filter or {}).items())
        ]

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        scored = [
            (record, _cosine(query_embedding, record.embedding))
            for record in self._matching(scope_prefix, categories, metadata_filter)
            if record.embedding
        ]
        scored = [pair for pair in scored if pair[1] >= min_score]
        return sorted(scored, key=lambda pair: pair[1], reverse=True)[:limit]

    def get_record(self, record_id: str) -> MemoryRecord | None:
        try:
            memory = self.hub.get(self.namespace, _names.key(record_id))
        except NotFound:
            return None
        return _record(memory.content)

    def list_records(self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0) -> list[MemoryRecord]:
        records = sorted(self._matching(scope_prefix), key=lambda r: r.created_at, reverse=True)
        return records[offset : offset + limit]

    def get_scope_info(self, scope: str) -> ScopeInfo:
        records = self._matching(scope)
        times = [r.created_at for r in records]
        return ScopeInfo(
            path=scope,
            record_count=len(records),
            categories=sorted({c for r in records for c in r.categories}),
            oldest_record=min(times) if times else None,
            newest_record=max(times) if times else None,
            child_scopes=self.list_scopes(scope),
        )

    def list_scopes(self, parent: str = "/") -> list[str]:
        base = parent.rstrip("/")
        children = set()
        for record in self._records():
            if record.scope.startswith(base + "/") and record.scope != base:
                rest = record.scope[len(base) + 1 :].split("/")[0]
                if rest:
                    children.add(f"{base}/{rest}")
        return sorted(children)

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._matching(scope_prefix):
            for category in record.categories:
                counts[category] = counts.get(category, 0) + 1
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        return len(self._matching(scope_prefix))

    # --- writing ---------------------------------------------------------------------------------

    def save(self, records: list[MemoryRecord]) -> None:
        for record in records:
            self.update(record)

    def update(self, record: MemoryRecord) -> None:
        # CrewAI leaves the embedding out of its serialization (to spare prompt tokens): keep it too.
        body = {**record.model_dump(mode="json"), "embedding": record.embedding}
        # Over the version read, re-read on a conflict: also in an optimistic namespace.
        self.hub.update(self.namespace, _names.key(record.id), lambda _: body, reason="crewai memory")

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        doomed = [
            r
            for r in self._matching(scope_prefix, categories, metadata_filter)
            if (record_ids is None or r.id in record_ids) and (older_than is None or r.created_at < older_than)
        ]
        deleted = 0
        for record in doomed:
            with contextlib.suppress(NotFound):
                key = _names.key(record.id)
                self.hub.delete(self.namespace, key, version=self.hub.get(self.namespace, key).version)
                deleted += 1
        return deleted

    def reset(self, scope_prefix: str | None = None) -> None:
        self.delete(scope_prefix=scope_prefix)

    # --- async (the blocking client in a worker thread) ------------------------------------------

    async def asave(self, records: list[MemoryRecord]) -> None:
        await asyncio.to_thread(self.save, records)

    async def asearch(self, query_embedding: list[float], **kwargs: Any) -> list[tuple[MemoryRecord, float]]:
        return await asyncio.to_thread(self.search, query_embedding, **kwargs)

    async def adelete(self, **kwargs: Any) -> int:
        return await asyncio.to_thread(self.delete, **kwargs)

    async def aupdate(self, record: MemoryRecord) -> None:
        await asyncio.to_thread(self.update, record)

    async def aget_record(self, record_id: str) -> MemoryRecord | None:
        return await asyncio.to_thread(self.get_record, record_id)

    async def alist_records(self, **kwargs: Any) -> list[MemoryRecord]:
        return await asyncio.to_thread(self.list_records, **kwargs)


class HubLockBackend:
    """CrewAI's lock backend (`crewai_core.lock_store.set_lock_backend`) on hub leases."""

    def __init__(self, hub: HubClient | None = None, *, prefix: str = "crewai:lock:", ttl: int = 60) -> None:
        self.hub = hub or HubClient()
        self.prefix = prefix
        self.ttl = ttl

    @contextlib.contextmanager
    def __call__(self, name: str, *, timeout: float = 120) -> Iterator[Lease]:
        resource = self.prefix + _names.encode(name)
        deadline = time.monotonic() + timeout
        while True:
            held = self.hub.lock(resource, ttl=self.ttl, wait=min(MAX_WAIT, max(deadline - time.monotonic(), 0)))
            try:
                lease = held.__enter__()
                break
            except LockHeld as refusal:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"lock {name!r} still held after {timeout} s: {refusal.holders}") from refusal
        try:
            yield lease
        finally:
            held.__exit__(None, None, None)


__all__ = ["HubLockBackend", "HubStorage"]
