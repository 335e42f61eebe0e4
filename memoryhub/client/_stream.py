"""What the sync and async event streams share: the URL, the resume cursor, and the reconnect policy.

The hub replays every readable event after `since`, then streams live ones, in seq order with no gap
and no repeat. After a drop the stream reconnects with `since` = the last seq it yielded, so the
reader sees each event once, in order, whatever happens to the socket."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

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
