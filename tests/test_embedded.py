"""The embedded server (`python -m memoryhub.embedded`, what `make run` starts) as a real process: REST,
a websocket that receives live what REST wrote, the dashboard, and lock waiters that do not take the
threads everyone else is served by."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid

import httpx
import pytest
import websockets

from tests.servers import server

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

# The embedded default: no Redis (the in-memory channel layer), sweepers in the server. Sockets re-read
# the log only every minute, so an event that arrives within seconds came through the channel layer.
EMBEDDED = {"REDIS_URL": "", "MEMORYHUB_INPROCESS_SWEEPER": "true", "MEMORYHUB_WS_CATCHUP_SECONDS": "60"}


def bearer(persona) -> dict[str, str]:
    return {"Authorization": f"Bearer {persona.token}"}


def write_headers(persona) -> dict[str, str]:
    return {**bearer(persona), "Idempotency-Key": str(uuid.uuid4())}


def test_one_process_serves_rest_live_websockets_and_the_dashboard(policies, make_agent, django_user_model, settings):
    writer = make_agent("docs-1", "docs")
    reader = make_agent("review-1", "code-review")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the server's
    django_user_model.objects.create_user("alice", password="correct-horse-battery", is_staff=True)
    with server(kind="embedded", env=EMBEDDED) as base:

        async def live_frame() -> dict:
            url = base.replace("http", "ws") + "/ws/v1/events/?namespaces=code:*"
            async with websockets.connect(url, additional_headers=bearer(reader)) as socket:
                await socket.send(json.dumps({"type": "ping"}))  # answered once the socket has subscribed
                assert json.loads(await asyncio.wait_for(socket.recv(), timeout=10))["type"] == "pong"
                async with httpx.AsyncClient(base_url=base) as client:
                    response = await client.put(
                        "/api/v1/memories/code:style/guide/",
                        json={"content": {"rule": "use ruff"}},
                        headers=write_headers(writer),
                    )
                    assert response.status_code == 201, response.text
                return json.loads(await asyncio.wait_for(socket.recv(), timeout=10))

        frame = asyncio.run(live_frame())
        assert frame["type"] == "event"
        assert (frame["event"]["resource"], frame["event"]["actor"]["id"]) == ("code:style/guide", "docs-1")

        read = httpx.get(f"{base}/api/v1/memories/code:style/guide/", headers=bearer(reader))
        assert (read.status_code, read.json()["content"]) == (200, {"rule": "use ruff"})

        with httpx.Client(base_url=base) as browser:
            login = browser.get("/login/")
            assert login.status_code == 200
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
            signed_in = browser.post(
                "/login/",
                data={"username": "alice", "password": "correct-horse-battery", "csrfmiddlewaretoken": token},
            )
            assert signed_in.status_code == 302, signed_in.text
            overview = browser.get("/")
            assert overview.status_code == 200 and "docs-1" in overview.text
            assert browser.get("/static/dashboard/live.js").status_code == 200
            # A streaming response, read from the database by its generator in the request's thread.
            export = browser.get("/events/export.jsonl")
            assert export.status_code == 200
            lines = [json.loads(line) for line in export.text.splitlines()]
            assert "code:style/guide" in {line["resource"] for line in lines[:-1]}
            assert lines[-1]["export"]["complete"] is True  # the export's own last line says it is whole


def test_agents_waiting_for_a_lock_leave_the_rest_threads_to_everyone_else(policies, make_agent):
    holder = make_agent("inventory-1", "inventory")
    waiters = [make_agent(f"orders-{n}", "orders") for n in range(3)]
    # One REST thread: a lock request that waited on it would leave none for anybody else.
    with server(kind="embedded", env={**EMBEDDED, "MEMORYHUB_EMBEDDED_THREADS": "1"}) as base:
        client = httpx.Client(base_url=base, timeout=10)
        # A name in a namespace everyone may read, so the holder sees the others' waits on it.
        body = {"resources": ["code:pricing-table"], "mode": "exclusive", "ttl_seconds": 60}
        held = client.post("/api/v1/locks/", json=body, headers=write_headers(holder))
        assert held.status_code == 201, held.text
        outcomes: dict[str, int] = {}

        def wait_for_the_lock(persona) -> None:
            with httpx.Client(base_url=base, timeout=30) as own:
                got = own.post("/api/v1/locks/", json={**body, "wait_seconds": 20}, headers=write_headers(persona))
                outcomes[persona.id] = got.status_code
                if got.status_code == 201:
                    lease = got.json()
                    own.request(
                        "DELETE",
                        f"/api/v1/locks/{lease['id']}/",
                        json={"holder_token": lease["holder_token"]},
                        headers=write_headers(persona),
                    )

        threads = [threading.Thread(target=wait_for_the_lock, args=(persona,)) for persona in waiters]
        for thread in threads:
            thread.start()
        try:
            for _ in range(200):
                # Each of these needs the REST thread: they time out if a waiter is sitting on it.
                listed = client.get("/api/v1/locks/?resource=code:pricing-table", headers=bearer(holder), timeout=3)
                if len(listed.json()["waiting"]) == len(waiters):
                    break
            else:
                pytest.fail("the waiters never showed up as waiting")
            me = client.get("/api/v1/me/", headers=bearer(holder), timeout=3)
            assert (me.status_code, me.json()["id"]) == (200, "inventory-1")
            assert outcomes == {}  # all three still waiting
        finally:
            released = client.request(
                "DELETE",
                f"/api/v1/locks/{held.json()['id']}/",
                json={"holder_token": held.json()["holder_token"]},
                headers=write_headers(holder),
            )
            for thread in threads:
                thread.join(timeout=60)
        assert released.status_code == 200, released.text
        assert outcomes == {persona.id: 201 for persona in waiters}  # each got it in turn once it was free


def test_the_embedded_server_serves_mcp_over_http(policies, make_agent):
    """`make run` answers /mcp/ like daphne does: a tool call through the official client, as the token's
    agent, lands in the log."""
    pytest.importorskip("mcp")
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from memoryhub.events.models import Event

    writer = make_agent("docs-1", "docs")

    async def call(base: str):
        async with (
            httpx.AsyncClient(headers=bearer(writer), timeout=30) as http,
            Client(streamable_http_client(f"{base}/mcp/", http_client=http)) as client,
        ):
            return await client.call_tool("memory_put", {"namespace": "code:style", "key": "mcp", "content": {"n": 1}})

    with server(kind="embedded", env=EMBEDDED) as base:
        refused = httpx.post(f"{base}/mcp/", json={})
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthenticated")
        result = asyncio.run(call(base))
    assert not result.is_error, result
    event = Event.objects.get(seq=result.structured_content["seq"])
    assert (event.type, event.actor_id, event.resource) == ("memory.created", "docs-1", "code:style/mcp")
