"""HubSession with the OpenAI Agents SDK's own Runner (a scripted model stands in for the LLM), and two
processes appending to one session at once."""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest

from memoryhub.events.models import Event
from tests.integrations.conftest import require, unique
from tests.integrations.workers import append_to_session

require("agents", "openai-agents")

from agents import Agent, Runner, set_tracing_disabled  # noqa: E402
from agents.items import ModelResponse  # noqa: E402
from agents.memory import Session  # noqa: E402
from agents.models.interface import Model  # noqa: E402
from agents.usage import Usage  # noqa: E402
from openai.types.responses import ResponseOutputMessage, ResponseOutputText  # noqa: E402

from memoryhub.client import AsyncHubClient  # noqa: E402
from memoryhub.integrations.openai_agents import HubSession  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]
set_tracing_disabled(True)


class ScriptedModel(Model):
    """The model's side of a run, without an LLM: it answers how many input items it was given, so
    the test sees the session's history reach the model."""

    async def get_response(self, system_instructions, input, *args, **kwargs) -> ModelResponse:
        count = 1 if isinstance(input, str) else len(input)
        text = ResponseOutputText(type="output_text", text=f"I was given {count} items", annotations=[])
        message = ResponseOutputMessage(
            id=f"msg-{count}", type="message", role="assistant", status="completed", content=[text]
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):  # pragma: no cover - the test runs without streaming
        raise NotImplementedError


def test_the_sdks_runner_keeps_the_conversation_in_the_hub(hub_url, agent):
    token = agent("support-1", "support").persona.token
    session_id = unique("chat ")  # a space: escaped in the hub namespace

    async def main():
        hub = AsyncHubClient(hub_url, token=token)
        try:
            session = HubSession(session_id, hub, namespace="scratch:sessions")
            assert isinstance(session, Session)  # the SDK's protocol
            bot = Agent(name="support", instructions="help", model=ScriptedModel())
            first = await Runner.run(bot, "Where is my order?", session=session)
            second = await Runner.run(bot, "And the invoice?", session=session)
            # A second session object (another process, say) sees the same history.
            history = await HubSession(session_id, hub, namespace="scratch:sessions").get_items()
            last = await session.get_items(limit=1)
            popped = await session.pop_item()
            after_pop = await session.get_items()
            await session.clear_session()
            return first.final_output, second.final_output, history, last, popped, after_pop, await session.get_items()
        finally:
            await hub.aclose()

    first, second, history, last, popped, after_pop, cleared = asyncio.run(main())
    assert first == "I was given 1 items"
    assert second == "I was given 3 items"  # the first turn's two items came from the hub
    assert [item.get("role") for item in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == "Where is my order?" and history[2]["content"] == "And the invoice?"
    assert last == history[-1:] and popped == history[-1] and after_pop == history[:-1]
    assert cleared == []
    writers = set(Event.objects.filter(namespace__startswith="scratch:sessions:").values_list("actor_id", flat=True))
    assert writers == {"support-1"}


def test_two_processes_appending_at_once_lose_and_reorder_nothing(hub_url, agent):
    tokens = [agent(f"writer-{i}", "writer").persona.token for i in range(2)]
    session_id, rounds = unique("race-"), 20
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=append_to_session, args=(hub_url, tokens[i], session_id, i, rounds)) for i in range(2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [process.exitcode for process in workers] == [0, 0]

    async def read():
        async with AsyncHubClient(hub_url, token=tokens[0]) as hub:
            return await HubSession(session_id, hub, namespace="counter:sessions").get_items()

    items = asyncio.run(read())
    assert len(items) == 2 * rounds * 3  # none lost
    for worker in range(2):
        mine = [(item["n"], item["part"]) for item in items if item["worker"] == worker]
        assert mine == [(n, part) for n in range(rounds) for part in range(3)]  # in the order appended
    for start in range(0, len(items), 3):  # each call's items stay together
        batch = items[start : start + 3]
        assert [item["part"] for item in batch] == [0, 1, 2]
        assert len({(item["worker"], item["n"]) for item in batch}) == 1
