"""AutoGen's `autogen_core.memory.Memory` stored in memoryhub. `pip install memoryhub[autogen]`.

    from autogen_agentchat.agents import AssistantAgent
    from memoryhub.client import AsyncHubClient
    from memoryhub.integrations.autogen import HubMemory

    memory = HubMemory("team:facts", AsyncHubClient(URL, token=TOKEN))
    agent = AssistantAgent("assistant", model_client=..., memory=[memory])

Each `add` is one memory in the namespace (keys ordered by time, so the chronological order of
ListMemory is kept), written as the token's agent. `query` uses the hub's search when it has one
(ranked, policy-filtered) and otherwise its text match (`GET memories/?q=`); an empty query returns
every item. `update_context` adds the items relevant to the conversation's last message to the model
context as one system message, as ListMemory does."""

from __future__ import annotations

import base64
import contextlib
import inspect
import time
import uuid
from typing import Any

from autogen_core import CancellationToken
from autogen_core.memory import Memory, MemoryContent, MemoryQueryResult, UpdateContextResult
from autogen_core.model_context import ChatCompletionContext
from autogen_core.models import SystemMessage

from memoryhub.client import AsyncHubClient, NotFound
from memoryhub.client.models import Memory as HubRecord


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def _stored(content: MemoryContent) -> dict[str, Any]:
    mime = content.mime_type if isinstance(content.mime_type, str) else content.mime_type.value
    body: dict[str, Any] = {"mime_type": mime, "metadata": content.metadata or {}}
    if isinstance(content.content, bytes):
        body["content_base64"] = base64.b64encode(content.content).decode()
    elif isinstance(content.content, str | dict):
        body["content"] = content.content
    else:
        raise TypeError(f"HubMemory stores text, JSON and bytes, not {type(content.content).__name__}")
    return body


def _content(record: HubRecord) -> MemoryContent:
    body = record.content or {}
    value = base64.b64decode(body["content_base64"]) if "content_base64" in body else body.get("content", "")
    metadata = {
        **body.get("metadata", {}),
        "key": record.key,
        "version": record.version,
        "updated_by": record.updated_by,
    }
    return MemoryContent(content=value, mime_type=body.get("mime_type", "text/plain"), metadata=metadata)


class HubMemory(Memory):
    def __init__(self, namespace: str, hub: Any = None, *, name: str | None = None, kind: str = "semantic", k: int = 5):
        self.namespace = namespace
        self.hub = hub or AsyncHubClient()
        self.kind = kind
        self.k = k
        self._name = name or f"memoryhub:{namespace}"

    @property
    def name(self) -> str:
        return self._name

    async def add(self, content: MemoryContent, cancellation_token: CancellationToken | None = None) -> None:
        key = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        await _value(self.hub.put(self.namespace, key, _stored(content), kind=self.kind, create_only=True))

    async def _all(self, q: str | None = None) -> list[HubRecord]:
        records = await _value(self.hub.all_memories(namespace=self.namespace, q=q))
        return sorted(records, key=lambda record: record.key)

    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        text = query if isinstance(query, str) else str(query.content)
        if not text:
            return MemoryQueryResult(results=[_content(record) for record in await self._all()])
        search = getattr(self.hub, "search", None)
        if search is not None:
            page = await _value(search(text, namespace=self.namespace, limit=kwargs.get("k", self.k)))
            records = [HubRecord.from_dict(r if isinstance(r, dict) else dict(r.raw)) for r in page.results]
        else:
            records = (await self._all(q=text))[: kwargs.get("k", self.k)]
        return MemoryQueryResult(results=[_content(record) for record in records])

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        messages = await model_context.get_messages()
        last = str(messages[-1].content) if messages else ""
        found = await self.query(last) if last else MemoryQueryResult(results=[])
        if found.results:
            lines = [f"{i}. {item.content!s}" for i, item in enumerate(found.results, 1)]
            await model_context.add_message(
                SystemMessage(content="\nRelevant memory content (in chronological order):\n" + "\n".join(lines) + "\n")
            )
        return UpdateContextResult(memories=found)

    async def clear(self) -> None:
        for record in await self._all():
            with contextlib.suppress(NotFound):  # deleted meanwhile
                await _value(self.hub.delete(self.namespace, record.key, version=record.version, reason="clear"))

    async def close(self) -> None:
        """The client is the caller's: closing the memory leaves it open."""


__all__ = ["HubMemory"]
