"""`HubClient`: the blocking client (httpx + websockets' sync API). Safe to share between threads."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from ._base import API, Call, Config, Operations, Reply, Retry, raise_for, retriable, retry_decision, unreachable
from ._stream import Cursor, fatal_close, reconnect_delay, stream_url
from .errors import HubError, LeaseExpired, NotFound, VersionConflict
from .models import ContextEntry, Event, Lease, Memory


def _reply(response: httpx.Response) -> Reply:
    body: Any = None
    if response.content:
        try:
            body = response.json()
        except ValueError:
            body = response.text
    return Reply(response.status_code, body, {k.lower(): v for k, v in response.headers.items()})


class HubClient(Operations):
    """A blocking client of one hub, as one agent (its token).

    `base_url` and `token` default to MEMORYHUB_URL and MEMORYHUB_TOKEN. Writes carry an Idempotency-Key
    and are retried with the same key on transport errors and 5xx, so a retry never writes twice."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: Retry | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = Config(base_url, token, retry, timeout)
        self._http = httpx.Client(
            base_url=self.config.base_url + API, headers=self.config.headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run(self, call: Call) -> Any:
        policy = self.config.retry
        for attempt in range(policy.attempts):
            try:
                response = self._http.request(
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
                time.sleep(policy.delay(attempt))
                continue
            reply = _reply(response)
            wait = retry_decision(reply, attempt, policy)
            if wait is not None:
                time.sleep(wait)
                continue
            raise_for(reply)
            return call.parse(reply)
        raise AssertionError("unreachable")  # the last attempt always returns or raises

    # --- read-modify-write -----------------------------------------------------------------------

    def update(
        self,
        namespace: str,
        key: str,
        fn: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        default: dict[str, Any] | None = None,
        reason: str | None = None,
        kind: str | None = None,
        ttl: int | None = None,
        fencing_token: int | None = None,
        max_attempts: int = 50,
        retry: Retry | None = None,
    ) -> Memory:
        """Read, apply `fn` to a copy of the content (it returns the new content, or None after changing
        the copy in place), write it back if the memory is still at the version read; on a conflict wait
        (exponential backoff + jitter), read again and re-apply. An absent memory is created from
        `default` (or {}) if nobody creates it first. Returns the memory as written (or as it is, when
        `fn` changed nothing)."""
        policy = retry or Retry(attempts=max_attempts, base=0.02, cap=1.0)
        current = self._get_or_none(namespace, key)
        for attempt in range(max_attempts):
            if current is None:
                base = copy.deepcopy(default or {})
            else:
                # Reads of the current memory answer NotFound once it is deleted: a live one has content.
                assert current.content is not None
                base = copy.deepcopy(current.content)
            content = fn(base)
            if content is None:  # fn changed the dict in place
                content = base
            if current is not None and content == current.content:
                return current  # nothing to change
            try:
                return self.put(
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
            time.sleep(policy.delay(attempt))
            current = self._get_or_none(namespace, key)
        raise AssertionError("unreachable")

    def _get_or_none(self, namespace: str, key: str) -> Memory | None:
        try:
            return self.get(namespace, key)
        except NotFound:
            return None

    # --- locks -----------------------------------------------------------------------------------

    def lock(
        self,
        resources: str | Iterable[str],
        ttl: int = 30,
        mode: str = "exclusive",
        wait: float = 10,
        *,
        heartbeat_every: float | None = None,
    ) -> LockContext:
        """`with hub.lock("inventory:sku-1") as lease:` — acquires (waiting up to `wait` s), heartbeats in
        the background while held (every ttl/3 s), releases on exit. `lease.fencing_token` goes with
        writes to locked namespaces; `lease.lost` turns True if the lease lapsed anyway."""
        return LockContext(self, resources, ttl=ttl, mode=mode, wait=wait, every=heartbeat_every)

    # --- the live stream -------------------------------------------------------------------------

    def events(
        self,
        since: int | None = 0,
        namespaces: Iterable[str] | None = None,
        *,
        contexts: bool = False,
        reconnect: bool = True,
        max_backoff: float = 5.0,
    ) -> EventStream:
        """Iterate over events after `since` (None: from now) over the websocket, reconnecting after a
        drop and resuming from the last seq yielded: no gap, no repeat. `contexts=True` also yields
        a ContextEntry for each entry sent to the caller or its role."""
        start = self.last_seq() if since is None else int(since)
        return EventStream(self, start, namespaces, contexts=contexts, reconnect=reconnect, max_backoff=max_backoff)


class LockContext:
    def __init__(self, client: HubClient, resources, *, ttl: int, mode: str, wait: float, every: float | None):
        self.client = client
        self.resources = resources
        self.ttl, self.mode, self.wait = ttl, mode, wait
        self.every = every or max(ttl / 3, 0.2)
        self.lease: Lease | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.lease = self.client.acquire(self.resources, ttl=self.ttl, mode=self.mode, wait=self.wait)
        self.lease.lost = False
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.lease.id}-heartbeat", daemon=True)
        self._thread.start()
        return self.lease

    def _beat(self) -> None:
        assert self.lease is not None
        while not self._stop.wait(self.every):
            try:
                renewed = self.client.heartbeat_lock(self.lease.id, ttl=self.ttl)
                self.lease.expires_at = renewed.expires_at
            except HubError as exc:
                if not retriable(exc):
                    self.lease.lost = True  # lapsed, force-released, or its agent suspended
                    return
                # The hub was unreachable for a while: keep trying while the lease may still be alive.

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        assert self.lease is not None
        if self.lease.lost:
            return
        try:
            self.client.release(self.lease.id)
        except (LeaseExpired, NotFound):
            self.lease.lost = True


class EventStream:
    """An iterator of `Event` (and, with contexts=True, `ContextEntry`). `close()` stops it from any
    thread; `last_seq` is where it would resume; `connections` counts the sockets it opened."""

    def __init__(self, client: HubClient, since: int, namespaces, *, contexts: bool, reconnect: bool, max_backoff):
        self.client = client
        self.namespaces = list(namespaces) if namespaces else None
        self.cursor = Cursor(since, contexts=contexts, client=client)
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.connections = 0
        self._closed = threading.Event()
        self._socket: ClientConnection | None = None
        self._iterator = self._run()

    @property
    def last_seq(self) -> int:
        return self.cursor.last_seq

    def __iter__(self) -> Iterator[Event | ContextEntry]:
        return self

    def __next__(self) -> Event | ContextEntry:
        return next(self._iterator)

    def close(self) -> None:
        self._closed.set()
        socket = self._socket
        if socket is not None:
            socket.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
        self._iterator.close()

    def _run(self) -> Generator[Event | ContextEntry, None, None]:
        failures = 0
        config = self.client.config
        while not self._closed.is_set():
            code, reason = None, ""
            try:
                with ws_connect(
                    stream_url(config.ws_url, self.cursor.last_seq, self.namespaces),
                    additional_headers={"Authorization": f"Bearer {config.token}"},
                    open_timeout=config.timeout,
                    proxy=None,
                ) as socket:
                    self._socket = socket
                    self.connections += 1
                    if self._closed.is_set():
                        return
                    for message in socket:
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
            self._closed.wait(reconnect_delay(failures, self.max_backoff))
