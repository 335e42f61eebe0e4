"""Two real daphne processes sharing Redis: a write through one reaches a socket on the other."""

import asyncio
import json

import httpx
import pytest
import websockets

from tests.servers import redis_url_for_tests, server

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


def test_a_write_through_one_server_reaches_a_socket_on_another(policies, make_agent):
    redis_url = redis_url_for_tests()
    if redis_url is None:
        pytest.skip("no Redis reachable: several server processes need a shared channel layer")
    writer = make_agent("docs-1", "docs")
    reader = make_agent("review-1", "code-review")
    env = {"REDIS_URL": redis_url}
    with server(env=env) as first, server(env=env) as second:

        async def scenario() -> dict:
            ws_url = second.replace("http", "ws") + "/ws/v1/events/?namespaces=code:*"
            async with websockets.connect(
                ws_url, additional_headers={"Authorization": f"Bearer {reader.token}"}
            ) as socket:
                await asyncio.sleep(0.3)  # the consumer has subscribed once connect() returned; margin for Redis
                async with httpx.AsyncClient() as client:
                    response = await client.put(
                        f"{first}/api/v1/memories/code:style/guide/",
                        json={"content": {"rule": "use ruff"}},
                        headers={"Authorization": f"Bearer {writer.token}"},
                    )
                    assert response.status_code == 201, response.text
                return json.loads(await asyncio.wait_for(socket.recv(), timeout=10))

        frame = asyncio.run(scenario())
    assert frame["type"] == "event"
    assert frame["event"]["resource"] == "code:style/guide"
    assert frame["event"]["actor"]["id"] == "docs-1"
