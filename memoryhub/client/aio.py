"""`AsyncHubClient`: the same operations as `HubClient`, awaitable (httpx.AsyncClient + websockets'
asyncio API). `async with hub.lock(...)`, `async for event in hub.events(...)`.

Only the transport lives here: how a request is sent, how to sleep, and the runner of the steps the
operations are written in (`_base`): every call a step yields is an awaitable, awaited here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import connect as ws_connect

from ._base import Call, Deliver, Done, Operations, Reply, Steps
from ._lock import Hold
from ._stream import Stream
from .models import ContextEntry, Event, Lease


async def advance(steps: Steps[Any]) -> Deliver | Done:
    """Run `steps` until it hands the reader an item (`Deliver`) or ends (`Done`)."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as end:
            return Done(end.value)
        if isinstance(step, Deliver):
            return step
        try:
            value, error = await step, None
        except Exception as exc:  # thrown into the steps at the `yield` that asked for it
            value, error = None, exc


async def finish(steps: Steps[Any]) -> Any:
    outcome = await advance(steps)
    assert isinstance(outcome, Done), "only a stream delivers items"
    return outcome.value


class AsyncLockContext(Hold):
    """`async with hub.lock(...) as lease:` — the heartbeat runs in a task while the lease is held."""

    async def __aenter__(self) -> Lease:
        self.lease = await self._acquire()
        self._entered()
        self._task = asyncio.create_task(finish(self._beats()))
        return self.lease

    async def _pause(self, seconds: float) -> bool:
        await asyncio.sleep(seconds)  # until the task is cancelled on exit
        return True

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self._left()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await finish(self._release())


class AsyncEventStream(Stream):
    """`async for item in hub.events(...)`; `aclose()` stops it from another task."""

    _connect = staticmethod(ws_connect)

    def __init__(self, client: AsyncHubClient, since: int | None, namespaces, *, contexts, reconnect, max_backoff):
        self._closed = asyncio.Event()
        super().__init__(client, since, namespaces, contexts=contexts, reconnect=reconnect, max_backoff=max_backoff)

    def __aiter__(self) -> AsyncIterator[Event | ContextEntry]:
        return self

    async def __anext__(self) -> Event | ContextEntry:
        outcome = await advance(self._steps)
        if isinstance(outcome, Done):
            raise StopAsyncIteration
        return outcome.item

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    async def aclose(self) -> None:
        # A reader waiting in another task sees the socket close and the stream closed, and stops.
        self._closed.set()
        await finish(self._hang_up())

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


class AsyncHubClient(Operations[httpx.AsyncBaseTransport]):
    """An asyncio client of one hub, as one agent (its token); see `HubClient`."""

    _http_client = httpx.AsyncClient
    _lock_context = AsyncLockContext
    _event_stream = AsyncEventStream

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHubClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    _finish = staticmethod(finish)
    _sleep = staticmethod(asyncio.sleep)

    async def _send(self, call: Call) -> Reply:
        return Reply.of(await self._http.request(call.method, call.path, **call.options(self.config.timeout)))
