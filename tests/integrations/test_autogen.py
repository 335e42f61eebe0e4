"""HubMemory as AutoGen's Memory: add, query, update_context on AutoGen's own model context, clear,
shared by two agents."""

from __future__ import annotations

import asyncio

import pytest

from tests.integrations.conftest import require, unique

require("autogen_core", "autogen")

from autogen_core.memory import Memory, MemoryContent, MemoryMimeType  # noqa: E402
from autogen_core.model_context import UnboundedChatCompletionContext  # noqa: E402
from autogen_core.models import SystemMessage, UserMessage  # noqa: E402

from memoryhub.client import AsyncHubClient  # noqa: E402
from memoryhub.integrations.autogen import HubMemory  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def test_two_agents_share_an_autogen_memory(hub_url, agent):
    writer, reader = agent("docs-1", "docs").persona.token, agent("support-1", "support").persona.token
    namespace = unique("counter:autogen")

    async def main():
        async with AsyncHubClient(hub_url, token=writer) as w, AsyncHubClient(hub_url, token=reader) as r:
            mine, theirs = HubMemory(namespace, w), HubMemory(namespace, r)
            assert isinstance(mine, Memory)
            await mine.add(MemoryContent(content="Acme renews in March", mime_type=MemoryMimeType.TEXT))
            await mine.add(MemoryContent(content={"customer": "acme", "seats": 45}, mime_type=MemoryMimeType.JSON))
            await mine.add(MemoryContent(content=b"\x00\x01raw", mime_type=MemoryMimeType.BINARY, metadata={"f": 1}))
            everything = await theirs.query("")
            acme = await theirs.query("renews")
            context = UnboundedChatCompletionContext()
            await context.add_message(UserMessage(content="renews", source="user"))
            updated = await theirs.update_context(context)
            messages = await context.get_messages()
            await mine.clear()
            return everything, acme, updated, messages, await theirs.query("")

    everything, acme, updated, messages, cleared = asyncio.run(main())
    assert [item.content for item in everything.results] == [
        "Acme renews in March",
        {"customer": "acme", "seats": 45},
        b"\x00\x01raw",
    ]
    assert everything.results[2].metadata["f"] == 1 and everything.results[0].metadata["updated_by"] == "docs-1"
    # Hybrid search: the lexical match ranks first; once the embeddings land, semantic neighbours
    # may follow it (nearest first), so only the head of the list is fixed.
    assert acme.results[0].content == "Acme renews in March"
    assert updated.memories.results[0].content == "Acme renews in March"
    assert isinstance(messages[-1], SystemMessage) and "1. Acme renews in March" in messages[-1].content
    assert cleared.results == []
