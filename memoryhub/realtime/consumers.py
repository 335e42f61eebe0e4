"""The live event stream: `/ws/v1/events/?since=<seq>&namespaces=<glob,...>`.

The log is the source of truth and the channel layer only a wake-up. The consumer keeps a cursor (the
last seq it has considered) and only ever moves it forward by one:
- a published event that is exactly cursor + 1 is sent as it came;
- one further ahead waits a moment for the missing ones (publishes from several processes can
  overtake each other), then the gap is read from the database, where every seq below a committed
  one is committed too (seqs are handed out under a lock held to commit);
- one at or below the cursor is a duplicate and dropped;
- when nothing has arrived for a while it re-reads the log, so a lost publish still arrives.
Replay from `since` works the same way, so there is no gap and no repeat between replay and live.

The channel layer is not needed to connect: a socket is accepted and served from the log (the idle
re-read) while Redis is down, and subscribes in the background once it is back (`_listen`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings

from memoryhub import metrics
from memoryhub.actors import Actor
from memoryhub.agents.authentication import agent_for_token
from memoryhub.agents.models import AgentToken, token_digest
from memoryhub.api.params import parse_int
from memoryhub.api.parsers import UNSTORABLE
from memoryhub.errors import Invalid
from memoryhub.events.models import Event
from memoryhub.events.publisher import GROUP, event_frame, event_meta
from memoryhub.events.visibility import EventFilter, frame_without_content
from policies.decide import decide_read, glob_match
from policies.selectors import policy_set

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
# The agent's tokens changed (revoked, or rotated with the old ones revoked): is ours still good?
TOKEN_EVENTS = ("agent.token_revoked", "agent.token_created")
BATCH = 500
GAP_GRACE_SECONDS = 0.05
# How long one attempt to subscribe may take (Redis paused: forever), and the longest pause between
# attempts while the layer is down.
SUBSCRIBE_TIMEOUT_SECONDS = 1.0
RESUBSCRIBE_MAX_DELAY_SECONDS = 5.0

log = logging.getLogger(__name__)


@database_sync_to_async
def _authenticate(scope) -> tuple[Actor | None, int, str]:
    """The caller, the close code refusing it (0: none), and the digest of its token if it used one."""
    headers = dict(scope.get("headers", []))
    raw = headers.get(b"authorization", b"").decode("latin1")
    scheme, _, token = raw.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        # The bare Actor, not the token lookup's Caller: the socket lives on and must see later
        # policy changes (see _load_policies).
        found = agent_for_token(token.strip())
        if found is None:
            return None, CLOSE_UNAUTHENTICATED, ""
        agent, _ = found
        if agent.is_suspended:
            return None, CLOSE_FORBIDDEN, ""
        return Actor.for_agent(agent), 0, token_digest(token.strip())
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        if not user.is_staff:
            return None, CLOSE_FORBIDDEN, ""
        return Actor.for_user(user), 0, ""
    return None, CLOSE_UNAUTHENTICATED, ""


@database_sync_to_async
def _token_active(digest: str) -> bool:
    return AgentToken.objects.filter(digest=digest, revoked_at=None).exists()


@database_sync_to_async
def _fetch_after(cursor: int, limit: int = BATCH) -> list[Event]:
    return list(Event.objects.filter(seq__gt=cursor).order_by("seq")[:limit])


@database_sync_to_async
def _last_seq() -> int:
    return Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


@database_sync_to_async
def _load_policies():
    return policy_set()


class EventStreamConsumer(AsyncWebsocketConsumer):
    actor: Actor
    digest: str  # of the token the socket authenticated with ("" for a session)
    cursor: int
    namespaces: list[str]
    channel_name = ""
    closed = False

    async def __call__(self, scope, receive, send):
        # Channels subscribes a consumer's channel in the layer before anything else, so with Redis
        # down every handshake failed. Here only the socket's own messages are awaited; the layer is
        # joined by `_listen`, in the background, and again after each failure.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            await await_many_dispatch([receive], self.dispatch)

    async def connect(self) -> None:
        actor, refusal, self.digest = await _authenticate(self.scope)
        if actor is None:
            # Accept first: a close frame before accepting becomes a plain HTTP 403 without our code.
            await self.accept()
            await self.close(code=refusal)
            return
        self.actor = actor
        params = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        self.namespaces = [g.strip() for g in ",".join(params.get("namespaces", [])).split(",") if g.strip()]
        self.filter = EventFilter(actor, await _load_policies())
        since_raw = (params.get("since") or [""])[0]
        try:
            since = parse_int(since_raw, name="since") if since_raw else None
        except Invalid:
            since = -1
        if since == -1 or any(UNSTORABLE.search(glob) or "\ufffd" in glob for glob in self.namespaces):
            await self.accept()
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        if any(not decide_read(self.filter.policies, actor, glob).allowed for glob in self.namespaces):
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.lock = asyncio.Lock()
        self.pending: dict[int, dict[str, Any]] = {}  # published events that arrived ahead of a gap
        self.gap_timer: asyncio.Task | None = None
        self.last_activity = time.monotonic()
        self.subscribed = asyncio.Event()
        self.served = False  # set once the cursor is placed; a later subscription then catches up
        # Subscribe before reading the log: whatever commits after this point is either in the replay
        # or arrives as a message (and is then dropped as a duplicate or fills from the log). If the
        # layer is down, connect anyway: the log is read every MEMORYHUB_WS_CATCHUP_SECONDS meanwhile.
        self.listener = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        await self.accept()
        metrics.websocket_connections.inc()
        self.counted = True
        self.cursor = since if since is not None else await _last_seq()
        async with self.lock:
            await self._catch_up()
            self.served = True
        self.ticker = asyncio.create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if getattr(self, "counted", False):
            metrics.websocket_connections.dec()
            self.counted = False
        for task in (getattr(self, "ticker", None), getattr(self, "gap_timer", None), getattr(self, "listener", None)):
            if task is not None:
                task.cancel()
        if self.channel_name and self.channel_layer is not None:
            # Bounded: with Redis paused, an unsubscribe would wait for as long as the pause.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.channel_layer.group_discard(GROUP, self.channel_name), SUBSCRIBE_TIMEOUT_SECONDS
                )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The stream is one-way; a client may send {"type": "ping"} to learn how far it has been sent.
        try:
            message = json.loads(text_data or "")
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send(text_data=json.dumps({"type": "pong", "seq": self.cursor}))

    # --- channel layer -------------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections (a thread hop) before every message; the events
        # of the stream need no connection of this thread, and a hop per event per socket is most
        # of what a busy socket costs.
        if message["type"] == "hub.event":
            await self.hub_event(message)
        else:
            await super().dispatch(message)

    async def hub_event(self, message: dict[str, Any]) -> None:
        async with self.lock:
            if self.closed or message["seq"] <= self.cursor:
                return  # already sent (replay, gap fill) or a duplicate publish
            self.pending[message["seq"]] = message
            await self._drain()
            if self.pending and self.gap_timer is None:
                # A later seq came first (publishes from several processes can overtake each other):
                # give the missing one a moment to arrive before reading the gap from the log.
                self.gap_timer = asyncio.create_task(self._fill_gap_soon())

    async def _listen(self) -> None:
        """Join the layer's group and pass its messages on; after a failure (Redis down or paused),
        try again with a growing pause, reading what was missed from the log once subscribed."""
        delay = 0.2
        while not self.closed and self.channel_layer is not None:
            try:
                if not self.channel_name:
                    self.channel_name = await asyncio.wait_for(
                        self.channel_layer.new_channel(), SUBSCRIBE_TIMEOUT_SECONDS
                    )
                await asyncio.wait_for(
                    self.channel_layer.group_add(GROUP, self.channel_name), SUBSCRIBE_TIMEOUT_SECONDS
                )
                self.subscribed.set()
                if self.served:
                    async with self.lock:
                        await self._catch_up()  # what committed while this socket was not subscribed
                delay = 0.2
                while not self.closed:
                    await self.dispatch(await self.channel_layer.receive(self.channel_name))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                metrics.websocket_subscribe_failures.inc()
                log.warning("websocket could not subscribe to the channel layer: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESUBSCRIBE_MAX_DELAY_SECONDS)

    # --- internals -------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Send the pending events that continue the cursor without a hole."""
        while (message := self.pending.pop(self.cursor + 1, None)) is not None and not self.closed:
            if "frame" not in message:  # too big to travel inline: read it (and whatever follows)
                await self._catch_up()
                break
            await self._consider(message["meta"], message["frame"])
            self.cursor = message["seq"]
        self.pending = {seq: m for seq, m in self.pending.items() if seq > self.cursor}

    async def _fill_gap_soon(self) -> None:
        await asyncio.sleep(GAP_GRACE_SECONDS)
        async with self.lock:
            self.gap_timer = None
            if self.pending and not self.closed:
                await self._catch_up()
                await self._drain()

    async def _tick(self) -> None:
        interval = settings.MEMORYHUB_WS_CATCHUP_SECONDS
        while not self.closed:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_activity < interval:
                continue
            async with self.lock:
                if not self.closed:
                    await self._catch_up()
                    self.last_activity = time.monotonic()

    async def _catch_up(self) -> None:
        while not self.closed:
            metrics.catch_up_reads.inc()
            batch = await _fetch_after(self.cursor)
            for event in batch:
                await self._consider(event_meta(event), event_frame(event))
                self.cursor = event.seq
                if self.closed:
                    return
            if len(batch) < BATCH:
                return

    async def _consider(self, meta: dict[str, Any], frame: str) -> None:
        """Send one event (and a context frame) if this caller may see it; react to policy and
        suspension changes, which every consumer sees whether or not it may read them."""
        self.last_activity = time.monotonic()
        kind = meta["type"]
        if kind == "policy.changed":
            self.filter.reset(await _load_policies())
        mine = self.actor.is_agent and meta["resource"] == f"agent:{self.actor.id}"
        if mine and kind == "agent.suspended":
            await self._send_and_close(frame, CLOSE_FORBIDDEN)
            return
        if mine and kind in TOKEN_EVENTS and not await _token_active(self.digest):
            # Revoked or rotated away: the socket ends as a new one with this token would be refused.
            await self._send_and_close(frame, CLOSE_UNAUTHENTICATED)
            return
        if not self.filter.visible(
            namespace=meta["namespace"],
            namespaces=meta.get("namespaces"),
            actor_kind=meta["actor_kind"],
            actor_id=meta["actor_id"],
            audience=meta["audience"],
        ):
            return
        if any(self._wanted(namespace) for namespace in meta.get("namespaces") or [meta["namespace"]]):
            if self.filter.hides_content(type=kind, namespace=meta["namespace"]):
                frame = frame_without_content(frame)
            await self.send(text_data=frame)
        if kind == "context.sent":
            entry = json.loads(frame)["event"].get("after") or {}
            if self._addressed_to_me(entry):
                await self.send(text_data=json.dumps({"type": "context", "entry": entry}))

    async def _send_and_close(self, frame: str, code: int) -> None:
        await self.send(text_data=frame)
        self.closed = True
        await self.close(code=code)

    def _wanted(self, namespace: str) -> bool:
        return not self.namespaces or any(glob_match(glob, namespace) for glob in self.namespaces)

    def _addressed_to_me(self, entry: dict[str, Any]) -> bool:
        if not self.actor.is_agent or entry.get("from_agent") == self.actor.id:
            return False
        return entry.get("to_agent") == self.actor.id or (
            bool(entry.get("to_role")) and entry.get("to_role") == self.actor.role
        )
