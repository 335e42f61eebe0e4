"""LangGraph's `BaseStore` on memoryhub: `HubStore` (over `HubClient`) and `AsyncHubStore` (over
`AsyncHubClient`). `pip install memoryhub[langgraph]`.

    from langgraph.graph import StateGraph
    from memoryhub.client import HubClient
    from memoryhub.integrations.langgraph import HubStore

    store = HubStore(HubClient(URL, token=TOKEN), prefix="lg")   # ("users", "u1") -> lg:users:u1
    graph = StateGraph(State).add_node(...).compile(store=store)

What it adds to LangGraph's stores: the hub's policies decide what each agent may read and write,
every version names its writer (the token's agent: `item.updated_by`) and is kept in the log, and
`put(..., version=n)` writes only over version n (`version=0`: only if absent), raising
`StoreVersionConflict` with the current item instead of silently replacing another agent's write.

Tuple namespaces map to hub namespaces reversibly (`memoryhub.integrations._names`): labels may hold
`:` or anything else. Deviations from LangGraph's InMemoryStore, each checked by the differential
suite in tests/integrations/test_langgraph_differential.py:
- results without a `query` come ordered by (namespace, key), not by insertion;
- `list_namespaces` lists namespaces that hold at least one item (InMemoryStore also keeps ones
  emptied by deletes or merely read);
- a `$gt`/`$gte`/`$lt`/`$lte` filter on a missing or non-numeric field does not match (InMemoryStore
  raises TypeError/ValueError);
- TTL: `ttl` minutes become the memory's `ttl_seconds` (rounded up); a read refreshes it by rewriting
  the item (a new version, reason "ttl refresh") once less than 90 % of it is left, since the hub has
  no touch; `put(..., ttl=None)` over an item with an expiry keeps that expiry (the hub cannot clear
  one); expired items disappear from reads at once (the hub's sweeper records them);
- values are JSON (tuples come back as lists; NaN and NUL characters are refused by the hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    NotProvided,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)
from langgraph.store.base import _ensure_ttl as ensure_ttl
from langgraph.store.base import _validate_namespace as validate_namespace

from memoryhub.client import AsyncHubClient, HubClient, NotFound, PreconditionRequired, VersionConflict
from memoryhub.client.errors import HubError
from memoryhub.client.models import Memory

from . import _names

REFRESH_WHEN_LEFT = 0.9  # refresh a TTL once less than this share of it is left
_OVERWRITE_ATTEMPTS = 20


class StoreVersionConflict(VersionConflict):
    """`put(..., version=n)` found the item at another version (or absent, or present for
    `version=0`). `.current_item` is the item as it is now (None if absent)."""

    current_item: Item | None = None


class HubItem(Item):
    """An `Item` with what the hub knows of it: `version`, `updated_by` (an agent id, or
    `human:<name>`), `kind`, `expires_at`."""

    __slots__ = ("version", "updated_by", "kind", "expires_at")

    version: int
    updated_by: str
    kind: str
    expires_at: datetime | None


class HubSearchItem(SearchItem):
    __slots__ = ("version", "updated_by", "kind", "expires_at")

    version: int
    updated_by: str
    kind: str
    expires_at: datetime | None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _annotate(item: Any, memory: Memory) -> Any:
    item.version, item.updated_by, item.kind = memory.version, memory.updated_by, memory.kind
    item.expires_at = _time(memory.expires_at)
    return item


def _item(labels: tuple[str, ...], memory: Memory) -> HubItem:
    return _annotate(
        HubItem(
            value=memory.content or {},
            key=_names.decode(memory.key),
            namespace=labels,
            created_at=_time(memory.raw.get("created_at") or memory.updated_at) or datetime.now(UTC),
            updated_at=_time(memory.updated_at) or datetime.now(UTC),
        ),
        memory,
    )


def _search_item(labels: tuple[str, ...], memory: Memory, score: float | None = None) -> HubSearchItem:
    item = _item(labels, memory)
    return _annotate(
        HubSearchItem(
            namespace=item.namespace,
            key=item.key,
            value=item.value,
            created_at=item.created_at,
            updated_at=item.updated_at,
            score=score,
        ),
        memory,
    )


# --- filters (LangGraph's operators, applied to the item's value) -------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _operator(value: Any, operator: str, expected: Any) -> bool:
    if operator == "$eq":
        return value == expected
    if operator == "$ne":
        return value != expected
    comparisons = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}
    if operator not in comparisons:
        raise ValueError(f"Unsupported operator: {operator}")
    left, right = _number(value), _number(expected)
    return left is not None and right is not None and comparisons[operator](left, right)


def matches(value: Any, condition: Any) -> bool:
    """LangGraph's filter semantics: nested objects match field by field, `$`-keys are operators,
    lists match element-wise, anything else by equality."""
    if isinstance(condition, dict):
        if any(name.startswith("$") for name in condition):
            return all(_operator(value, name, expected) for name, expected in condition.items())
        return isinstance(value, dict) and all(matches(value.get(k), v) for k, v in condition.items())
    if isinstance(condition, list | tuple):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(condition)
            and all(matches(v, c) for v, c in zip(value, condition, strict=True))
        )
    return value == condition


def _match_path(labels: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(labels) < len(path):
        return False
    if condition.match_type == "suffix":
        labels, path = labels[::-1], path[::-1]
    return all(wanted == "*" or label == wanted for label, wanted in zip(labels, path, strict=False))


async def _value(result: Any) -> Any:
    """A client answer: awaited on AsyncHubClient, as is on HubClient."""
    return await result if inspect.isawaitable(result) else result


def _drive(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (every await is a HubClient answer, already there)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a HubStore operation awaited something real: use AsyncHubStore for async clients")


class _Store(BaseStore):
    """The operations once, for both clients: every client call is `await _value(hub.op(...))`."""

    supports_ttl = True
    hub: Any

    def __init__(
        self, hub: Any, *, prefix: str = "", kind: str | None = None, ttl_config: TTLConfig | None = None
    ) -> None:
        self.hub = hub
        self.prefix = prefix.strip(":")
        self.kind = kind
        self.ttl_config = ttl_config

    # --- the batch -------------------------------------------------------------------------------

    async def _batch(self, ops: Iterable[Op]) -> list[Result]:
        """LangGraph's batch semantics (as InMemoryStore): reads see the state before the batch's
        writes; writes to the same item keep the last one."""
        ops = list(ops)
        results: list[Result] = []
        writes: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                results.append(await self._get(op))
            elif isinstance(op, SearchOp):
                results.append(await self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._list_namespaces(op))
            elif isinstance(op, PutOp):
                writes[(tuple(op.namespace), op.key)] = op
                results.append(None)
            else:
                raise ValueError(f"Unknown operation type: {type(op)}")
        for op in writes.values():
            await self._write(op)
        return results

    async def _get(self, op: GetOp) -> HubItem | None:
        try:
            memory = await _value(self.hub.get(_names.join(self.prefix, op.namespace), _names.key(op.key)))
        except NotFound:
            return None
        if op.refresh_ttl:
            await self._refresh(memory)
        return _item(tuple(op.namespace), memory)

    async def _refresh(self, memory: Memory) -> None:
        """LangGraph's TTLs count from the last access; the hub's from the last write. A read that
        finds less than 90 % of the TTL left rewrites the item unchanged with it (only over the version
        read: a write meanwhile has set its own expiry)."""
        if not memory.expires_at or not memory.updated_at:
            return
        expires, updated = _time(memory.expires_at), _time(memory.updated_at)
        assert expires is not None and updated is not None
        ttl = (expires - updated).total_seconds()
        if ttl <= 0 or (expires - datetime.now(UTC)).total_seconds() >= REFRESH_WHEN_LEFT * ttl:
            return
        # Changed meanwhile, or the reader may not write it: then it keeps the expiry it has.
        with contextlib.suppress(HubError):
            await _value(
                self.hub.put(
                    memory.namespace,
                    memory.key,
                    memory.content or {},
                    version=memory.version,
                    ttl=max(1, round(ttl)),
                    reason="ttl refresh",
                )
            )

    async def _memories(self, glob: str) -> list[Memory]:
        return list(await _value(self.hub.all_memories(namespace=glob)))

    def _under(self, memory: Memory, prefix: tuple[str, ...]) -> tuple[str, ...] | None:
        labels = _names.split(self.prefix, memory.namespace)
        if labels is None or labels[: len(prefix)] != prefix:
            return None
        try:
            _names.decode(memory.key)
        except _names.UnmappableName:
            return None
        return labels

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        if op.query:
            return await self._ranked(op, prefix)
        found = []
        for memory in await self._memories(_names.glob(self.prefix, prefix)):
            labels = self._under(memory, prefix)
            if labels is not None and (not op.filter or matches(memory.content or {}, op.filter)):
                found.append((labels, _names.decode(memory.key), memory))
        found.sort(key=lambda entry: (entry[0], entry[1]))
        page = found[op.offset : op.offset + op.limit]
        if op.refresh_ttl:
            for _, _, memory in page:
                await self._refresh(memory)
        return [_search_item(labels, memory) for labels, _, memory in page]

    async def _ranked(self, op: SearchOp, prefix: tuple[str, ...]) -> list[SearchItem]:
        """A `query` goes to the hub's search (GET search/: full text and embeddings, ranked, only
        what this agent may read); the namespace prefix and filter are then applied to each page."""
        search = getattr(self.hub, "search", None)
        if search is None:
            raise NotImplementedError("store.search(query=...) needs the hub's search (client hub.search)")
        wanted = op.offset + op.limit
        kept: list[SearchItem] = []
        cursor = None
        while len(kept) < wanted:
            page = await _value(
                search(op.query, namespace=_names.glob(self.prefix, prefix), limit=min(100, wanted * 2), cursor=cursor)
            )
            for result in page.results:
                memory = Memory.from_dict(result if isinstance(result, dict) else dict(result.raw))
                labels = self._under(memory, prefix)
                if labels is not None and (not op.filter or matches(memory.content or {}, op.filter)):
                    kept.append(_search_item(labels, memory, getattr(result, "score", None)))
            cursor = page.next_cursor
            if not cursor:
                break
        return kept[op.offset : wanted]

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = list(op.match_conditions or ())
        # The literal start of a prefix condition narrows what the hub lists.
        literal: tuple[str, ...] = ()
        for condition in conditions:
            if condition.match_type == "prefix":
                path = tuple(condition.path)
                stop = path.index("*") if "*" in path else len(path)
                literal = max(literal, path[:stop], key=len)
        seen: set[tuple[str, ...]] = set()
        for memory in await self._memories(_names.glob(self.prefix, literal)):
            labels = self._under(memory, literal)
            if labels is not None and all(_match_path(labels, c) for c in conditions):
                seen.add(labels[: op.max_depth] if op.max_depth is not None else labels)
        return sorted(seen)[op.offset : op.offset + op.limit]

    # --- writes ----------------------------------------------------------------------------------

    async def _write(self, op: PutOp) -> None:
        namespace, key = _names.join(self.prefix, op.namespace), _names.key(op.key)
        if op.value is None:
            await self._delete(namespace, key)
            return
        ttl = None if op.ttl is None or isinstance(op.ttl, NotProvided) else max(1, math.ceil(op.ttl * 60))
        await self._overwrite(namespace, key, dict(op.value), ttl)

    async def _overwrite(self, namespace: str, key: str, value: dict[str, Any], ttl: int | None) -> Memory:
        """LangGraph's put replaces the item. In an optimistic namespace the hub wants the version it
        replaces: the refusal names it, and a write that lost a race goes again."""
        version = None
        for _ in range(_OVERWRITE_ATTEMPTS):
            try:
                return await _value(self.hub.put(namespace, key, value, version=version, kind=self.kind, ttl=ttl))
            except PreconditionRequired as refusal:
                version = refusal.details.get("current_version")
            except VersionConflict as conflict:
                current = conflict.current
                version = current.version if current is not None else None
        raise RuntimeError(f"{namespace}/{key}: still contended after {_OVERWRITE_ATTEMPTS} attempts")

    async def _delete(self, namespace: str, key: str) -> None:
        version = None
        for _ in range(_OVERWRITE_ATTEMPTS):
            try:
                await _value(self.hub.delete(namespace, key, version=version))
                return
            except NotFound:
                return
            except PreconditionRequired as refusal:
                version = refusal.details.get("current_version")
            except VersionConflict as conflict:
                current = conflict.current
                if current is None:
                    return
                version = current.version
        raise RuntimeError(f"{namespace}/{key}: still contended after {_OVERWRITE_ATTEMPTS} attempts")

    async def _put_version(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        version: int,
        ttl: float | None | NotProvided,
    ) -> HubItem:
        validate_namespace(namespace)
        minutes = ensure_ttl(self.ttl_config, ttl)
        seconds = None if minutes is None else max(1, math.ceil(minutes * 60))
        try:
            memory = await _value(
                self.hub.put(
                    _names.join(self.prefix, namespace),
                    _names.key(key),
                    dict(value),
                    version=version or None,
                    create_only=version == 0,
                    kind=self.kind,
                    ttl=seconds,
                )
            )
        except VersionConflict as conflict:
            raise self._conflict(conflict, tuple(namespace)) from None
        return _item(tuple(namespace), memory)

    @staticmethod
    def _conflict(conflict: VersionConflict, labels: tuple[str, ...]) -> StoreVersionConflict:
        error = StoreVersionConflict(
            conflict.message, status=conflict.status, code=conflict.code, details=conflict.details
        )
        current = conflict.current
        error.current_item = _item(labels, current) if current is not None and current.content is not None else None
        return error


class HubStore(_Store):
    """LangGraph's store on a hub, through a blocking `HubClient` (one agent: its token)."""

    def __init__(
        self,
        hub: HubClient | None = None,
        *,
        prefix: str = "",
        kind: str | None = None,
        ttl_config: TTLConfig | None = None,
    ) -> None:
        super().__init__(hub or HubClient(), prefix=prefix, kind=kind, ttl_config=ttl_config)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return _drive(self._batch(ops))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    def put(  # type: ignore[override]
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        index: Any = None,
        *,
        ttl: float | None | NotProvided = NOT_PROVIDED,
        version: int | None = None,
    ) -> HubItem | None:
        """LangGraph's put; with `version`, only over that version (0: only if absent), else
        StoreVersionConflict. Returns the item written when `version` is given."""
        if version is None:
            super().put(namespace, key, value, index, ttl=ttl)
            return None
        return _drive(self._put_version(namespace, key, value, version, ttl))

    def get(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None) -> HubItem | None:
        return super().get(namespace, key, refresh_ttl=refresh_ttl)  # type: ignore[return-value]


class AsyncHubStore(_Store):
    """LangGraph's store on a hub, through an `AsyncHubClient`. Its sync methods work from other
    threads while the event loop that first used it runs (as LangGraph's async stores do)."""

    def __init__(
        self,
        hub: AsyncHubClient | None = None,
        *,
        prefix: str = "",
        kind: str | None = None,
        ttl_config: TTLConfig | None = None,
    ) -> None:
        super().__init__(hub or AsyncHubClient(), prefix=prefix, kind=kind, ttl_config=ttl_config)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        self._loop = asyncio.get_running_loop()
        return await self._batch(ops)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop or not loop.is_running():
            raise asyncio.InvalidStateError(
                "AsyncHubStore's sync methods run from another thread than its event loop: use abatch/aget/aput"
            )
        return asyncio.run_coroutine_threadsafe(self._batch(list(ops)), loop).result()

    async def aput(  # type: ignore[override]
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        index: Any = None,
        *,
        ttl: float | None | NotProvided = NOT_PROVIDED,
        version: int | None = None,
    ) -> HubItem | None:
        """See `HubStore.put`."""
        self._loop = asyncio.get_running_loop()
        if version is None:
            await super().aput(namespace, key, value, index, ttl=ttl)
            return None
        return await self._put_version(namespace, key, value, version, ttl)


__all__ = ["AsyncHubStore", "HubItem", "HubSearchItem", "HubStore", "StoreVersionConflict", "matches"]
