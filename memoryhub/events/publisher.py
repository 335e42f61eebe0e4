"""Publishing committed events to the channel layer.

The log is the source of truth; a publish is only a wake-up with the event attached. Consumers fill
any gap from the database and re-read it when idle, so a publish lost here (layer down, message
dropped) is delivered later anyway. That is why failures are logged and swallowed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from memoryhub import metrics
from memoryhub.requestlog import note_written

from .serializers import event_to_dict

log = logging.getLogger(__name__)

GROUP = "hub.events"
# Bigger events travel as a bare seq; consumers read them from the log.
MAX_INLINE_BYTES = 32 * 1024

_loop_lock = threading.Lock()


def event_meta(event) -> dict[str, Any]:
    """What a consumer needs to decide whether a caller may see an event, without parsing it."""
    return {
        "type": event.type,
        "namespace": event.namespace,
        "namespaces": event.namespaces,
        "resource": event.resource,
        "actor_kind": event.actor_kind,
        "actor_id": event.actor_id,
        "audience": event.audience,
    }


def event_frame(event) -> str:
    """The websocket frame for an event, encoded once here rather than once per connected socket."""
    return json.dumps({"type": "event", "seq": event.seq, "event": event_to_dict(event)}, default=str)


def message_for(event) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "hub.event", "seq": event.seq, "meta": event_meta(event)}
    frame = event_frame(event)
    if len(frame) <= MAX_INLINE_BYTES:
        message["frame"] = frame
    return message


class _Publisher:
    """One event loop thread per process for publishing from sync code (WSGI workers, Celery, the
    threads of ASGI views), so the Redis connection pool is reused instead of a new loop and
    connection per async_to_sync call. One queue and one sender keep this process's publishes in
    commit order (concurrent sends could overtake each other, and every overtaken seq makes each
    socket wait for it or read it from the database)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[tuple[Any, list[dict[str, Any]]]] = asyncio.Queue()
        threading.Thread(target=self._run, name="memoryhub-publisher", daemon=True).start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.create_task(self._sender())
        self.loop.run_forever()

    async def _sender(self) -> None:
        while True:
            layer, messages = await self.queue.get()
            await _send_all(layer, messages)

    def put(self, layer, messages: list[dict[str, Any]]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (layer, messages))


_publisher: _Publisher | None = None


def _background_publisher() -> _Publisher:
    global _publisher
    with _loop_lock:
        if _publisher is None:
            _publisher = _Publisher()
        return _publisher


async def _send_all(layer, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        try:
            await layer.group_send(GROUP, message)
        except Exception:  # the log still has it; consumers catch up from the database
            metrics.publish_failures.inc()
            log.warning("could not publish event %s", message["seq"], exc_info=True)


def publish_events(events: Sequence) -> None:
    note_written(events)  # the request's log line names the seqs it wrote
    layer = get_channel_layer()
    if layer is None or not events:
        return
    messages = [message_for(event) for event in events]
    try:
        if type(layer).__name__ == "InMemoryChannelLayer":
            # The in-memory layer's queues belong to the server's event loop: go through it.
            async_to_sync(_send_all)(layer, messages)
        else:
            _background_publisher().put(layer, messages)
    except Exception:
        metrics.publish_failures.inc(len(messages))
        log.warning("could not publish %d events", len(messages), exc_info=True)
