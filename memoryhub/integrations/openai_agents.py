"""The OpenAI Agents SDK's `Session` stored in memoryhub. `pip install memoryhub[openai-agents]`.

    from agents import Agent, Runner
    from memoryhub.client import AsyncHubClient
    from memoryhub.integrations.openai_agents import HubSession

    session = HubSession("support-chat-42", AsyncHubClient(URL, token=TOKEN))
    await Runner.run(agent, "Where is my order?", session=session)

A session is a hub namespace (`<namespace>:<session id, escaped>`; default `session:...`, which a
policy must let the agents read and write) holding one memory per item, keyed by its position, and a
`meta` memory with the next position. Appending reserves positions by a compare-and-set of `meta`
(the hub's versions), then writes each item as create-only at its own position: two processes
appending at once get disjoint runs of positions, so no item is lost or overwritten, each call's
items stay together and in order, and readers see them ordered by position. An append that dies
between reserving and writing leaves a gap, never a wrong order. Every item names the agent that
wrote it (the token) in the hub's log."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from typing import Any

from memoryhub.client import AsyncHubClient, NotFound, VersionConflict
from memoryhub.client.models import Memory

from . import _names

META = "meta"
_WIDTH = 12


def _position(key: str) -> int | None:
    return int(key[2:]) if key.startswith("i-") and key[2:].isdigit() else None


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


class HubSession:
    """`agents.memory.Session` over a hub (an `AsyncHubClient`; a `HubClient` works too, blocking)."""

    session_settings = None

    def __init__(self, session_id: str, hub: Any = None, *, namespace: str = "session") -> None:
        self.session_id = session_id
        self.hub = hub or AsyncHubClient()
        self.namespace = _names.join(namespace.strip(":"), (session_id,))

    async def _reserve(self, count: int) -> int:
        """The first of `count` positions nobody else has (compare-and-set on `meta`)."""
        written = await _value(
            self.hub.update(
                self.namespace,
                META,
                lambda meta: {**meta, "next": meta.get("next", 0) + count},
                default={"next": 0, "start": 0},
                reason=f"reserve {count}",
            )
        )
        return int(written.content["next"]) - count

    async def _meta(self) -> dict[str, Any]:
        try:
            return (await _value(self.hub.get(self.namespace, META))).content or {}
        except NotFound:
            return {}

    async def _items(self) -> list[tuple[int, Memory]]:
        memories: list[Memory] = list(await _value(self.hub.all_memories(namespace=self.namespace)))
        start = int((await self._meta()).get("start", 0))
        positioned = [(p, m) for m in memories if (p := _position(m.key)) is not None and p >= start]
        return sorted(positioned, key=lambda pair: pair[0])

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The items in order; with `limit`, the latest `limit` of them (still oldest first)."""
        items = [memory.content["item"] for _, memory in await self._items() if memory.content]
        return items[-limit:] if limit is not None and limit > 0 else ([] if limit == 0 else items)

    async def add_items(self, items: list[Any]) -> None:
        items = list(items)
        if not items:
            return
        first = await self._reserve(len(items))
        await asyncio.gather(
            *(
                _value(self.hub.put(self.namespace, f"i-{first + offset:0{_WIDTH}d}", {"item": item}, create_only=True))
                for offset, item in enumerate(items)
            )
        )

    async def pop_item(self) -> Any | None:
        """Remove and return the latest item (each item goes to one popper only: the delete is
        conditional on the version read)."""
        while True:
            items = await self._items()
            if not items:
                return None
            _, memory = items[-1]
            try:
                await _value(self.hub.delete(self.namespace, memory.key, version=memory.version, reason="pop"))
            except (NotFound, VersionConflict):
                continue  # someone else popped it first
            return (memory.content or {}).get("item")

    async def clear_session(self) -> None:
        """Forget every item: positions below the current end no longer count (one write), then the
        items are deleted. Items appended meanwhile come after that end and stay."""
        meta = await _value(
            self.hub.update(
                self.namespace,
                META,
                lambda meta: {**meta, "start": meta.get("next", 0)},
                default={"next": 0, "start": 0},
                reason="clear",
            )
        )
        end = int(meta.content.get("start", 0))
        memories = await _value(self.hub.all_memories(namespace=self.namespace))
        for memory in memories:
            position = _position(memory.key)
            if position is not None and position < end:
                with contextlib.suppress(NotFound, VersionConflict):  # popped or cleared meanwhile
                    await _value(self.hub.delete(self.namespace, memory.key, version=memory.version, reason="clear"))


__all__ = ["HubSession"]
