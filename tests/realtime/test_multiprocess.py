"""Two real daphne processes sharing Redis: a write through one reaches a socket on the other by the
channel layer's publish, not by the consumer's periodic re-read of the log."""

import asyncio
import json

import httpx
import pytest
import websockets

from tests.servers import redis_url_for_tests, server

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

# The consumers' idle re-read of the log (2 s by default) would deliver the event too, Redis or not:
# pushed far past the test's wait, only a publish can bring the event in time.
NO_CATCH_UP = {"MEMORYHUB_WS_CATCHUP_SECONDS": "600"}
WAIT_SECONDS = 10


def test_a_write_through_one_server_reaches_a_socket_on_another_by_publish(policies, make_agent):
    redis_url = redis_url_for_tests()
    if redis_url is None:
        pytest.skip("no Redis reachable: several server processes need a shared channel layer")
    writer = make_agent("docs-1", "docs")
    reader = make_agent("review-1", "code-review")
    env = {"REDIS_URL": redis_url, **NO_CATCH_UP}
    with server(env=env) as first, server(env=env) as second:

        async def scenario() -> dict:
            ws_url = second.replace("http", "ws") + "/ws/v1/events/?namespaces=code:*"
            async with websockets.connect(
                ws_url, additional_headers={"Authorization": f"Bearer {reader.token}"}
            ) as socket:
                # A consumer handles one message at a time: the pong proves its connect() is done,
                # subscription to the channel layer included.
                await socket.send(json.dumps({"type": "ping"}))
                assert json.loads(await asyncio.wait_for(socket.recv(), timeout=WAIT_SECONDS))["type"] == "pong"
                async with httpx.AsyncClient() as client:
                    response = await client.put(
                        f"{first}/api/v1/memories/code:style/guide/",
                        json={"content": {"rule": "use ruff"}},
                        headers={"Authorization": f"Bearer {writer.token}"},
                    )
                    assert response.status_code == 201, response.text
                return json.loads(await asyncio.wait_for(socket.recv(), timeout=WAIT_SECONDS))

        frame = asyncio.run(scenario())
    assert frame["type"] == "event"
    assert frame["event"]["resource"] == "code:style/guide"
    assert frame["event"]["actor"]["id"] == "docs-1"
