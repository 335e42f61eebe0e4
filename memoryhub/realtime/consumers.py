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
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from memoryhub.actors import Actor
from memoryhub.agents.authentication import agent_for_token
from memoryhub.agents.models import AgentToken, token_digest
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

    async def connect(self) -> None:
        actor, refusal, self.digest = await _authenticate(self.scope)
        if actor is None:
            # Accept first: a close frame before accepting becomes a plain HTTP 403 without our code.
            await self.accept()
            await self.close(code=refusal)
            return
        self.actor = actor
        params = parse_qs(self.scope.get("query_string", b"").decode())
        self.namespaces = [g.strip() for g in ",".join(params.get("namespaces", [])).split(",") if g.strip()]
        self.filter = EventFilter(actor, await _load_policies())
        since_raw = (params.get("since") or [""])[0]
        if since_raw and not since_raw.isdigit():
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
        self.closed = False
        self.last_activity = time.monotonic()
        # Subscribe before reading the log: whatever commits after this point is either in the replay
        # or arrives as a message (and is then dropped as a duplicate or fills from the log).
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        self.cursor = int(since_raw) if since_raw else await _last_seq()
        async with self.lock:
            await self._catch_up()
        self.ticker = asyncio.create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if hasattr(self, "ticker"):
            self.ticker.cancel()
        if (timer := getattr(self, "gap_timer", None)) is not None:
            timer.cancel()
        if hasattr(self, "lock"):
            await self.channel_layer.group_discard(GROUP, self.channel_name)

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
