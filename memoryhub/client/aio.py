"""`AsyncHubClient`: the same operations as `HubClient`, awaitable (httpx.AsyncClient + websockets'
asyncio API). `async with hub.lock(...)`, `async for event in hub.events(...)`."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ._base import API, Call, Config, Operations, Retry, raise_for, retriable, retry_decision, unreachable
from ._stream import Cursor, fatal_close, reconnect_delay, stream_url
from .errors import HubError, LeaseExpired, NotFound, VersionConflict
from .models import ContextEntry, Event, Lease, Memory
from .sync import _reply


class AsyncHubClient(Operations):
    """An asyncio client of one hub, as one agent (its token); see `HubClient`."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: Retry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = Config(base_url, token, retry, timeout)
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url + API, headers=self.config.headers, timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHubClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def _run(self, call: Call) -> Any:
        policy = self.config.retry
        for attempt in range(policy.attempts):
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    headers=call.headers,
                    timeout=call.timeout or self.config.timeout,
                )
            except httpx.TransportError as exc:
                if attempt + 1 >= policy.attempts:
                    raise unreachable(call, exc) from exc
                await asyncio.sleep(policy.delay(attempt))
                continue
            reply = _reply(response)
            wait = retry_decision(reply, attempt, policy)
            if wait is not None:
                await asyncio.sleep(wait)
                continue
            raise_for(reply)
            return call.parse(reply)
        raise AssertionError("unreachable")

    async def update(
        self,
        namespace: str,
        key: str,
        fn: Callable[[dict[str, Any]], Any],
        *,
        default: dict[str, Any] | None = None,
        reason: str | None = None,
        kind: str | None = None,
        ttl: int | None = None,
        fencing_token: int | None = None,
        max_attempts: int = 50,
        retry: Retry | None = None,
    ) -> Memory:
        """See `HubClient.update`; `fn` may also be a coroutine function."""
        policy = retry or Retry(attempts=max_attempts, base=0.02, cap=1.0)
        current = await self._get_or_none(namespace, key)
        for attempt in range(max_attempts):
            if current is None:
                base = copy.deepcopy(default or {})
            else:
                # Reads of the current memory answer NotFound once it is deleted: a live one has content.
                assert current.content is not None
                base = copy.deepcopy(current.content)
            content = fn(base)
            if inspect.isawaitable(content):
                content = await content
            if content is None:  # fn changed the dict in place
                content = base
            if current is not None and content == current.content:
                return current
            try:
                return await self.put(
                    namespace,
                    key,
                    content,
                    version=current.version if current else None,
                    create_only=current is None,
                    reason=reason,
                    kind=kind,
                    ttl=ttl,
                    fencing_token=fencing_token,
                )
            except VersionConflict:
                if attempt + 1 >= max_attempts:
                    raise
            await asyncio.sleep(policy.delay(attempt))
            current = await self._get_or_none(namespace, key)
        raise AssertionError("unreachable")

    async def _get_or_none(self, namespace: str, key: str) -> Memory | None:
        try:
            return await self.get(namespace, key)
        except NotFound:
            return None

    def lock(
        self,
        resources: str | Iterable[str],
        ttl: int = 30,
        mode: str = "exclusive",
        wait: float = 10,
        *,
        heartbeat_every: float | None = None,
    ) -> AsyncLockContext:
        """`async with hub.lock(...) as lease:` — see `HubClient.lock`."""
        return AsyncLockContext(self, resources, ttl=ttl, mode=mode, wait=wait, every=heartbeat_every)

    def events(
        self,
        since: int | None = 0,
        namespaces: Iterable[str] | None = None,
        *,
        contexts: bool = False,
        reconnect: bool = True,
        max_backoff: float = 5.0,
    ) -> AsyncEventStream:
        """`async for event in hub.events(since=...)` — see `HubClient.events`."""
        return AsyncEventStream(
            self, since, namespaces, contexts=contexts, reconnect=reconnect, max_backoff=max_backoff
        )


class AsyncLockContext:
    def __init__(self, client: AsyncHubClient, resources, *, ttl: int, mode: str, wait: float, every: float | None):
        self.client = client
        self.resources = resources
        self.ttl, self.mode, self.wait = ttl, mode, wait
        self.every = every or max(ttl / 3, 0.2)
        self.lease: Lease | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Lease:
        self.lease = await self.client.acquire(self.resources, ttl=self.ttl, mode=self.mode, wait=self.wait)
        self._task = asyncio.create_task(self._beat())
        return self.lease

    async def _beat(self) -> None:
        assert self.lease is not None
        while True:
            await asyncio.sleep(self.every)
            try:
                renewed = await self.client.heartbeat_lock(self.lease.id, ttl=self.ttl)
                self.lease.expires_at = renewed.expires_at
            except HubError as exc:
                if not retriable(exc):
                    self.lease.lost = True
                    return

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        assert self.lease is not None
        if self.lease.lost:
            return
        try:
            await self.client.release(self.lease.id)
        except (LeaseExpired, NotFound):
            self.lease.lost = True


class AsyncEventStream:
    def __init__(self, client: AsyncHubClient, since, namespaces, *, contexts, reconnect, max_backoff):
        self.client = client
        self.since = since
        self.namespaces = list(namespaces) if namespaces else None
        self.contexts = contexts
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.cursor: Cursor | None = None
        self.connections = 0
        self._closed = asyncio.Event()
        self._socket: ClientConnection | None = None
        self._iterator = self._run()

    @property
    def last_seq(self) -> int | None:
        return self.cursor.last_seq if self.cursor else None

    def __aiter__(self) -> AsyncIterator[Event | ContextEntry]:
        return self

    async def __anext__(self) -> Event | ContextEntry:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        self._closed.set()
        if self._socket is not None:
            await self._socket.close()
        # RuntimeError: being iterated by another task, which now sees the closed socket and stops.
        with contextlib.suppress(RuntimeError):
            await self._iterator.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[Event | ContextEntry, None]:
        config = self.client.config
        since = await self.client.last_seq() if self.since is None else int(self.since)
        self.cursor = Cursor(since, contexts=self.contexts, client=self.client)
        failures = 0
        while not self._closed.is_set():
            code, reason = None, ""
            try:
                async with ws_connect(
                    stream_url(config.ws_url, self.cursor.last_seq, self.namespaces),
                    additional_headers={"Authorization": f"Bearer {config.token}"},
                    open_timeout=config.timeout,
                    proxy=None,
                ) as socket:
                    self._socket = socket
                    self.connections += 1
                    async for message in socket:
                        failures = 0
                        item = self.cursor.accept(message)
                        if item is not None:
                            yield item
                    code, reason = socket.close_code, socket.close_reason or ""
            except ConnectionClosed as exc:
                code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
            except (OSError, InvalidHandshake, TimeoutError):
                pass
            finally:
                self._socket = None
            if self._closed.is_set():
                return
            if (fatal := fatal_close(code, reason)) is not None:
                raise fatal
            if not self.reconnect:
                return
            failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), reconnect_delay(failures, self.max_backoff))
