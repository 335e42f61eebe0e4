"""Redis paused (SIGSTOP), then killed, then started again, with sockets connected and new sockets
connecting: writes keep succeeding, every socket gets every event from the log in seq order with no
gap and no repeat, new sockets connect during the outage, /readyz answers 503 naming the channel
layer within 3 s, and live delivery comes back with Redis."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import websockets

from tests.faults.conftest import hub_server

POLICIES = {
    "namespaces": [{"pattern": "scratch:*", "readers": ["*"], "writers": ["*"], "write_mode": "last_write_wins"}]
}


class Socket:
    """A websocket reading event frames into `seqs` in the background."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.seqs: list[int] = []

    async def __aenter__(self) -> Socket:
        self.connection = await asyncio.wait_for(
            websockets.connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"}), 5
        )
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.connection:
            frame = json.loads(raw)
            if frame["type"] == "event":
                self.seqs.append(frame["seq"])

    async def __aexit__(self, *exc) -> None:
        self.reader.cancel()
        await self.connection.close()

    async def wait_for(self, seq: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.seqs or self.seqs[-1] < seq:
            assert time.monotonic() < deadline, f"socket got {self.seqs[-5:]}, waiting for {seq}"
            await asyncio.sleep(0.05)


def test_sockets_survive_a_redis_pause_and_kill(make_hub, private_redis):
    hub = make_hub(policies=POLICIES, agents={"writer-1": "worker", "reader-1": "worker"})
    env = {"REDIS_URL": private_redis.url, "MEMORYHUB_WS_CATCHUP_SECONDS": "1"}
    with hub_server(hub, kind="gunicorn", env=env) as (rest, _), hub_server(hub, env=env) as (ws, _):
        stream = ws.replace("http", "ws") + "/ws/v1/events/?namespaces=scratch:*"
        writer = httpx.Client(base_url=rest, headers={"Authorization": f"Bearer {hub.tokens['writer-1']}"}, timeout=10)
        written: list[int] = []

        def write(count: int) -> int:
            for _ in range(count):
                number = len(written)
                response = writer.put(f"/api/v1/memories/scratch:s/k{number % 3}/", json={"content": {"n": number}})
                assert response.status_code in (200, 201), response.text
                written.append(response.json()["seq"])
            return written[-1]

        def readyz() -> tuple[int, dict, float]:
            started = time.monotonic()
            response = httpx.get(f"{ws}/readyz", timeout=10)
            return response.status_code, response.json(), time.monotonic() - started

        async def scenario() -> dict[str, list[int]]:
            token = hub.tokens["reader-1"]
            async with Socket(stream, token) as first:
                await asyncio.sleep(0.5)
                await first.wait_for(write(5), timeout=5)

                private_redis.pause()
                last = await asyncio.to_thread(write, 5)
                status, body, took = await asyncio.to_thread(readyz)
                assert status == 503 and "channel_layer" in body["failed"] and took < 3, (status, body, took)
                await first.wait_for(last, timeout=8)  # from the log: the publishes are stuck
                started = time.monotonic()
                async with Socket(stream, token) as during_pause:
                    assert time.monotonic() - started < 5
                    await during_pause.wait_for(await asyncio.to_thread(write, 3), timeout=8)

                    private_redis.kill()
                    last = await asyncio.to_thread(write, 5)
                    await first.wait_for(last, timeout=8)
                    await during_pause.wait_for(last, timeout=8)
                    async with Socket(stream, token) as during_kill:
                        await during_kill.wait_for(await asyncio.to_thread(write, 3), timeout=8)

                        private_redis.start()
                        deadline = time.monotonic() + 10
                        while (await asyncio.to_thread(readyz))[0] != 200:
                            assert time.monotonic() < deadline, "not ready 10 s after Redis came back"
                            await asyncio.sleep(0.2)
                        await asyncio.sleep(2)  # the sockets re-subscribe with a growing pause (<= 5 s)
                        # Live again: delivered well before the 1 s idle re-read would have found them.
                        last = await asyncio.to_thread(write, 5)
                        for socket in (first, during_pause, during_kill):
                            await socket.wait_for(last, timeout=8)
                        return {"first": first.seqs, "pause": during_pause.seqs, "kill": during_kill.seqs}

        seen = asyncio.run(asyncio.wait_for(scenario(), timeout=120))

    hub.assert_log_has_no_seq_gap()
    for name, seqs in seen.items():
        # In seq order, no repeat, nothing missing from where the socket started to the end.
        assert seqs == sorted(set(seqs)), f"{name}: out of order or repeated: {seqs}"
        assert seqs == [seq for seq in written if seq >= seqs[0]], f"{name}: missed some: {seqs} of {written}"
