"""What the sync and async event streams share: the URL, the resume cursor, the reconnect policy, and
the session itself, as steps (see `_base`).

The hub replays every readable event after `since`, then streams live ones, in seq order with no gap
and no repeat. After a drop the stream reconnects with `since` = the last seq it yielded, so the
reader sees each event once, in order, whatever happens to the socket."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ._base import Deliver, Steps
from .errors import HubError, close_code_error
from .models import ContextEntry, Event

# Close codes after which reconnecting would be refused the same way again.
FATAL_CLOSE_CODES = {4400, 4401, 4403}


def stream_url(ws_base: str, since: int, namespaces: Iterable[str] | None) -> str:
    query: dict[str, Any] = {"since": since}
    if namespaces:
        query["namespaces"] = ",".join(namespaces)
    return f"{ws_base}?{urlencode(query)}"


def reconnect_delay(failures: int, cap: float) -> float:
    """Full jitter on an exponential backoff: 0.1 s, 0.2 s, ... up to `cap`."""
    return random.uniform(0, min(cap, 0.1 * (2 ** min(failures, 10))))


class Cursor:
    """Turns frames into what the reader gets, and remembers where to resume."""

    def __init__(self, since: int, *, contexts: bool, client: Any) -> None:
        self.last_seq = since
        self.contexts = contexts
        self.client = client
        # Context frames carry no seq (and come even when `namespaces` leaves out the inbox's): a
        # replay after a reconnect may send one again, so they are told apart by entry id.
        self._entries_seen: dict[int, None] = {}

    def accept(self, message: str | bytes) -> Event | ContextEntry | None:
        try:
            frame = json.loads(message)
        except ValueError:
            return None
        if not isinstance(frame, dict):
            return None
        if frame.get("type") == "event":
            seq = int(frame.get("seq") or frame.get("event", {}).get("seq") or 0)
            if seq <= self.last_seq:
                return None  # already yielded before a reconnect
            event = Event.from_dict(frame["event"])
            self.last_seq = seq
            return event
        if frame.get("type") == "context" and self.contexts:
            entry = frame.get("entry") or {}
            if "id" not in entry or entry["id"] in self._entries_seen:
                return None
            self._entries_seen[entry["id"]] = None
            if len(self._entries_seen) > 10_000:
                del self._entries_seen[next(iter(self._entries_seen))]
            return ContextEntry.from_dict(entry, client=self.client)
        return None


def fatal_close(code: int | None, reason: str = "") -> HubError | None:
    return close_code_error(code, reason) if code in FATAL_CLOSE_CODES else None


class Stream:
    """A reconnecting event stream over one websocket at a time. The transport subclass provides
    `_connect` (websockets' `connect`, sync or asyncio: both sockets have `recv()` and `close()`),
    `_closed` (an Event set by `close()`/`aclose()`), `_pause(seconds)`, and the iterator protocol,
    which runs `_steps` up to the next item. `connections` counts the sockets it opened."""

    _connect: Callable[..., Any]
    _closed: Any

    def __init__(self, client: Any, since: int | None, namespaces, *, contexts: bool, reconnect: bool, max_backoff):
        self.client = client
        self.namespaces = list(namespaces) if namespaces else None
        self.contexts = contexts
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.cursor = None if since is None else Cursor(int(since), contexts=contexts, client=client)
        self.connections = 0
        self._socket: Any = None
        self._steps = self._session()

    @property
    def last_seq(self) -> int | None:
        """Where the stream would resume (None until a `since=None` stream has looked up the newest seq)."""
        return self.cursor.last_seq if self.cursor else None

    def _pause(self, seconds: float) -> Any:  # pragma: no cover - provided by the subclasses
        raise NotImplementedError

    def _session(self) -> Steps[None]:
        if self.cursor is None:  # since=None: from the newest seq now
            since = yield self.client.last_seq()
            self.cursor = Cursor(since, contexts=self.contexts, client=self.client)
        config = self.client.config
        options = {"additional_headers": {"Authorization": f"Bearer {config.token}"}, "open_timeout": config.timeout}
        failures = 0
        while not self._closed.is_set():
            code, reason = None, ""
            try:
                url = stream_url(config.ws_url, self.cursor.last_seq, self.namespaces)
                self._socket = socket = yield self._connect(url, proxy=None, **options)
                self.connections += 1
                while not self._closed.is_set():
                    message = yield socket.recv()
                    failures = 0
                    item = self.cursor.accept(message)
                    if item is not None:
                        yield Deliver(item)
            except ConnectionClosed as exc:  # a clean close too (ConnectionClosedOK)
                code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
            except (OSError, InvalidHandshake, TimeoutError):
                pass
            yield from self._hang_up()
            if self._closed.is_set():
                return
            if (fatal := fatal_close(code, reason)) is not None:
                raise fatal
            if not self.reconnect:
                return
            failures += 1
            yield self._pause(reconnect_delay(failures, self.max_backoff))

    def _hang_up(self) -> Steps[None]:
        socket, self._socket = self._socket, None
        if socket is not None:
            yield socket.close()
