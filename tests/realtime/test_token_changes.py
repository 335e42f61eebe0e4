"""A revoked or rotated token loses its open sockets at once, as a suspended agent does, on a real
daphne with real websockets (issue 12, L7). New sockets with it were already refused with 4401."""

import asyncio
import io
import json

import pytest
import websockets
from django.core.management import call_command

from memoryhub.actors import SYSTEM
from memoryhub.agents.models import AgentToken
from memoryhub.agents.services import token_revoke

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def agents(policies, make_agent):
    return make_agent("sales-1", "sales"), make_agent("docs-1", "docs")


def ws_url(hub_server: str) -> str:
    return hub_server.replace("http", "ws") + "/ws/v1/events/"


async def _open(hub_server: str, token: str):
    socket = await websockets.connect(ws_url(hub_server), additional_headers={"Authorization": f"Bearer {token}"})
    await socket.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(socket.recv(), timeout=10))["type"] == "pong"  # accepted, streaming
    return socket


async def _frames_until_closed(socket, timeout: float = 10) -> tuple[list[dict], int | None]:
    frames = []
    try:
        async with asyncio.timeout(timeout):
            async for message in socket:
                frames.append(json.loads(message))
    except TimeoutError:
        return frames, None  # still open
    except websockets.ConnectionClosed:
        pass
    return frames, socket.close_code


def _run(hub_server, agents, change, timeout: float = 10) -> tuple[list[dict], int | None, int | None]:
    """Open a socket for each agent, apply `change` to the tokens, and say how each socket ended."""
    sales, docs = agents

    async def scenario():
        changed = await _open(hub_server, sales.token)
        bystander = await _open(hub_server, docs.token)
        await asyncio.to_thread(change)
        frames, code = await _frames_until_closed(changed, timeout)
        _, bystander_code = await _frames_until_closed(bystander, timeout=1.5)
        await bystander.close()
        return frames, code, bystander_code

    return asyncio.run(scenario())


def test_rotating_a_token_closes_its_open_socket(hub_server, agents):
    frames, code, bystander = _run(
        hub_server, agents, lambda: call_command("rotate_token", "sales-1", stdout=io.StringIO())
    )
    assert code == 4401
    assert [frame["event"]["type"] for frame in frames if frame["type"] == "event"] == ["agent.token_created"]
    assert bystander is None  # another agent's socket streams on


def test_revoking_a_token_closes_its_open_socket(hub_server, agents):
    sales, _ = agents
    token_id = AgentToken.objects.get(agent_id=sales.id).id
    _, code, bystander = _run(hub_server, agents, lambda: token_revoke(actor=SYSTEM, token_id=token_id))
    assert (code, bystander) == (4401, None)


def test_a_new_token_that_keeps_the_old_ones_keeps_the_socket(hub_server, agents):
    frames, code, _ = _run(
        hub_server,
        agents,
        lambda: call_command("rotate_token", "sales-1", "--keep-existing", stdout=io.StringIO()),
        timeout=3,  # the event reaches the socket within a catch-up interval (1 s here) without Redis
    )
    assert code is None
    assert [frame["event"]["type"] for frame in frames if frame["type"] == "event"] == ["agent.token_created"]
