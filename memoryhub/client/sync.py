"""`HubClient`: the blocking client (httpx + websockets' sync API). Safe to share between threads.

Only the transport lives here: how a request is sent, how to sleep, and the runner of the steps the
operations are written in (`_base`): every call a step yields has already happened, so its value
goes straight back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from ._base import Call, Deliver, Done, Operations, Reply, Steps
from ._lock import Hold
from ._stream import Stream
from .models import ContextEntry, Event, Lease


def advance(steps: Steps[Any]) -> Deliver | Done:
    """Run `steps` until it hands the reader an item (`Deliver`) or ends (`Done`)."""
    value = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration as end:
            return Done(end.value)
        if isinstance(step, Deliver):
            return step
        value = step


def finish(steps: Steps[Any]) -> Any:
    outcome = advance(steps)
    assert isinstance(outcome, Done), "only a stream delivers items"
    return outcome.value


class LockContext(Hold):
    """`with hub.lock(...) as lease:` — the heartbeat runs in a daemon thread while the lease is held."""

    def __enter__(self) -> Lease:
        self.lease = self._acquire()
        self._entered()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=finish, args=(self._beats(),), name=f"lease-{self.lease.id}-heartbeat")
        self._thread.daemon = True
        self._thread.start()
        return self.lease

    def _pause(self, seconds: float) -> bool:
        return not self._stop.wait(seconds)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._left()
        self._stop.set()
        self._thread.join()
        finish(self._release())


class EventStream(Stream):
    """An iterator of `Event` (and, with contexts=True, `ContextEntry`). `close()` stops it from any
    thread; `last_seq` is where it would resume; `connections` counts the sockets it opened."""

    def __init__(self, client: HubClient, since: int | None, namespaces, *, contexts, reconnect, max_backoff):
        self._closed = threading.Event()
        # A blocking client can look "now" up at once, so `last_seq` is known before iterating.
        start = client.last_seq() if since is None else since
        super().__init__(client, start, namespaces, contexts=contexts, reconnect=reconnect, max_backoff=max_backoff)

    @property
    def last_seq(self) -> int:
        assert self.cursor is not None
        return self.cursor.last_seq

    def __iter__(self) -> Iterator[Event | ContextEntry]:
        return self

    def __next__(self) -> Event | ContextEntry:
        outcome = advance(self._steps)
        if isinstance(outcome, Done):
            raise StopIteration
        return outcome.item

    def _connect(self, url: str, **options: Any) -> ClientConnection:
        return ws_connect(url, legacy=True, **options)  # the socket itself, closed by `_hang_up`

    def _pause(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def close(self) -> None:
        self._closed.set()
        finish(self._hang_up())  # ends a `recv()` blocked in the reader's thread

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
        self._steps.close()


class HubClient(Operations[httpx.BaseTransport]):
    """A blocking client of one hub, as one agent (its token).

    `base_url` and `token` default to MEMORYHUB_URL and MEMORYHUB_TOKEN. Writes carry an Idempotency-Key
    and are retried with the same key on transport errors and 5xx, so a retry never writes twice."""

    _http_client = httpx.Client
    _lock_context = LockContext
    _event_stream = EventStream

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    _finish = staticmethod(finish)
    _sleep = staticmethod(time.sleep)

    def _send(self, call: Call) -> Reply:
        return Reply.of(self._http.request(call.method, call.path, **call.options(self.config.timeout)))
