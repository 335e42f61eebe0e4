"""The stream's query string is checked like the API's (non-ASCII digits, NUL), and a socket connects
and is served from the log while the channel layer cannot be reached."""

import asyncio
import socket

import pytest
from channels.db import database_sync_to_async

from memoryhub import metrics
from memoryhub.memories.services import memory_put
from tests.realtime.test_stream import agents, connect, frames  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)
write = database_sync_to_async(memory_put)


@pytest.mark.parametrize(
    "query",
    ["?since=²", "?since=٣", "?since=-1", "?since=99999999999999999999", "?namespaces=code:%00", "?namespaces=%FF"],
)
async def test_a_bad_query_string_closes_4400(agents, query):  # noqa: F811
    communicator, connected = await connect(agents["docs"].token, query)
    assert connected
    assert (await communicator.receive_output(timeout=5))["code"] == 4400


@pytest.fixture
def unreachable_layer(settings):
    """A real Redis channel layer pointed at a port that accepts and never answers (Redis paused)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{listener.getsockname()[1]}/0"}]},
        }
    }
    settings.MEMORYHUB_WS_CATCHUP_SECONDS = 0.3
    try:
        yield
    finally:
        listener.close()


async def test_a_socket_connects_and_gets_events_from_the_log_while_the_layer_is_down(
    agents,  # noqa: F811
    unreachable_layer,
):
    docs = agents["docs"]
    failures = metrics.websocket_subscribe_failures._value.get()
    connections = metrics.websocket_connections._value.get()
    started = asyncio.get_running_loop().time()
    communicator, connected = await connect(docs.token)
    assert connected
    assert asyncio.get_running_loop().time() - started < 3
    assert metrics.websocket_connections._value.get() == connections + 1
    await write(actor=docs.actor, namespace="code:a", key="k", content={"n": 1})
    [frame] = await frames(communicator, 1, timeout=5)
    assert frame["event"]["resource"] == "code:a/k"
    await asyncio.sleep(1.5)
    assert metrics.websocket_subscribe_failures._value.get() > failures  # it kept trying
    await communicator.disconnect()
    assert metrics.websocket_connections._value.get() == connections
