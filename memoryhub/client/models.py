"""What the client returns: small objects over the hub's JSON. Every one keeps the full answer in
`.raw`, so fields the server adds later are never lost. Objects that can act (an inbox entry, a task,
a lease) hold their client: on an `AsyncHubClient` their methods return awaitables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _get(data: dict[str, Any], name: str, default: Any = None) -> Any:
    value = data.get(name, default)
    return default if value is None and default is not None else value


@dataclass
class Memory:
    namespace: str
    key: str
    content: dict[str, Any] | None
    version: int
    kind: str = "working"
    created_by: str = ""
    updated_by: str = ""
    updated_at: str | None = None
    expires_at: str | None = None
    reason: str = ""
    # The lifecycle (README "Memory lifecycle"): every write verifies, `hub.verify` re-verifies; a
    # semantic memory past its namespace's stale_after_seconds is `stale`.
    stale: bool = False
    verified_at: str | None = None
    verified_by: str = ""
    valid_until: str | None = None
    superseded_by: str | None = None  # "<namespace>/<key>" of the memory that replaced it
    derived_from: list[str] | None = None  # a summary's source episodes
    archived_at: str | None = None  # an episode summarized (kept for audit, out of default reads)
    seq: int | None = None  # the seq of the event a write produced
    replayed: bool = False  # the answer is a replay of an earlier request with the same Idempotency-Key
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, replayed: bool = False) -> Memory:
        return cls(
            namespace=data.get("namespace", ""),
            key=data.get("key", ""),
            content=data.get("content"),
            version=int(data.get("version") or 0),
            kind=_get(data, "kind", "working"),
            created_by=_get(data, "created_by", ""),
            updated_by=_get(data, "updated_by", ""),
            updated_at=data.get("updated_at"),
            expires_at=data.get("expires_at"),
            reason=_get(data, "reason", ""),
            stale=bool(data.get("stale")),
            verified_at=data.get("verified_at"),
            verified_by=_get(data, "verified_by", ""),
            valid_until=data.get("valid_until"),
            superseded_by=data.get("superseded_by"),
            derived_from=data.get("derived_from"),
            archived_at=data.get("archived_at"),
            seq=data.get("seq"),
            replayed=replayed,
            raw=data,
        )

    @property
    def resource(self) -> str:
        return f"{self.namespace}/{self.key}"


@dataclass
class SearchResult:
    namespace: str
    key: str
    version: int
    kind: str
    updated_by: str
    updated_at: str | None
    score: float
    content: dict[str, Any] | None
    snippet: str = ""  # HTML-escaped, <mark> around lexical matches
    stale: bool = False  # a semantic memory past its namespace's stale_after_seconds
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchResult:
        return cls(
            namespace=data.get("namespace", ""),
            key=data.get("key", ""),
            version=int(data.get("version") or 0),
            kind=_get(data, "kind", "working"),
            updated_by=_get(data, "updated_by", ""),
            updated_at=data.get("updated_at"),
            score=float(data.get("score") or 0.0),
            content=data.get("content"),
            snippet=_get(data, "snippet", ""),
            stale=bool(data.get("stale")),
            raw=data,
        )


class Page(list):
    """One page of a list: its items, and `next_cursor` to pass as `cursor=` for the next page (None
    on the last)."""

    def __init__(self, items: list[Any], next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor


@dataclass
class SearchPage:
    results: list[SearchResult]
    next_cursor: str | None = None  # pass as `cursor=` for the next page
    incomplete: bool = False  # semantic results may miss memories not embedded yet
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchPage:
        return cls(
            results=[SearchResult.from_dict(item) for item in data.get("results", [])],
            next_cursor=data.get("next_cursor"),
            incomplete=bool(data.get("incomplete")),
            notes=list(data.get("notes") or []),
            raw=data,
        )

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


@dataclass
class Event:
    seq: int
    type: str
    at: str
    actor: dict[str, Any]
    namespace: str
    resource: str
    version: int | None = None
    summary: str = ""
    before: Any = None
    after: Any = None
    reason: str = ""
    idempotency_key: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            seq=int(data["seq"]),
            type=data.get("type", ""),
            at=data.get("at", ""),
            actor=data.get("actor") or {},
            namespace=data.get("namespace", ""),
            resource=data.get("resource", ""),
            version=data.get("version"),
            summary=_get(data, "summary", ""),
            before=data.get("before"),
            after=data.get("after"),
            reason=_get(data, "reason", ""),
            idempotency_key=_get(data, "idempotency_key", ""),
            raw=data,
        )

    @property
    def actor_id(self) -> str:
        return self.actor.get("id", "")


@dataclass
class ContextEntry:
    """An inbox entry (with the caller's `.receipt`), or an entry just sent (with `.seq`)."""

    id: int
    context_type: str
    content: dict[str, Any]
    subject: str = ""
    from_agent: str | None = None
    from_role: str = ""
    to_role: str | None = None
    to_agent: str | None = None
    requires_ack: bool = False
    reply_to: int | None = None
    created_at: str | None = None
    expires_at: str | None = None
    receipt: dict[str, Any] | None = None
    seq: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    _client: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], client: Any = None) -> ContextEntry:
        return cls(
            id=int(data["id"]),
            context_type=data.get("context_type", ""),
            content=data.get("content") or {},
            subject=_get(data, "subject", ""),
            from_agent=data.get("from_agent"),
            from_role=_get(data, "from_role", ""),
            to_role=data.get("to_role"),
            to_agent=data.get("to_agent"),
            requires_ack=bool(data.get("requires_ack")),
            reply_to=data.get("reply_to"),
            created_at=data.get("created_at"),
            expires_at=data.get("expires_at"),
            receipt=data.get("receipt"),
            seq=data.get("seq"),
            raw=data,
            _client=client,
        )

    def ack(self, note: str = ""):
        """Acknowledge this entry (and mark it read). Idempotent."""
        return self._client.ack(self.id, note=note)

    def read(self):
        """Mark this entry read. Idempotent."""
        return self._client.mark_read(self.id)

    def reply(self, content: dict[str, Any], *, context_type: str | None = None, **options):
        """Send an answer to the sender, threaded under this entry."""
        target = {"to_agent": self.from_agent} if self.from_agent else {"to_role": self.from_role}
        return self._client.send(
            context_type=context_type or self.context_type,
            content=content,
            subject=self.subject or None,
            reply_to=self.id,
            **target,
            **options,
        )


@dataclass
class Receipt:
    entry: int
    agent: str
    read_at: str | None = None
    acked_at: str | None = None
    ack_note: str = ""
    seq: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        return cls(
            entry=int(data.get("entry") or 0),
            agent=data.get("agent", ""),
            read_at=data.get("read_at"),
            acked_at=data.get("acked_at"),
            ack_note=_get(data, "ack_note", ""),
            seq=data.get("seq"),
            raw=data,
        )


@dataclass
class Task:
    id: int
    role: str
    kind: str
    payload: Any
    status: str
    attempts: int = 0
    max_attempts: int = 0
    claimed_by: str | None = None
    claim_expires_at: str | None = None
    result: Any = None
    error: str = ""
    created: bool | None = None  # create_task: False when an idempotency_key found the existing task
    seq: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    _client: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], client: Any = None) -> Task:
        return cls(
            id=int(data["id"]),
            role=data.get("role", ""),
            kind=data.get("kind", ""),
            payload=data.get("payload"),
            status=data.get("status", ""),
            attempts=int(data.get("attempts") or 0),
            max_attempts=int(data.get("max_attempts") or 0),
            claimed_by=data.get("claimed_by"),
            claim_expires_at=data.get("claim_expires_at"),
            result=data.get("result"),
            error=_get(data, "error", ""),
            created=data.get("created"),
            seq=data.get("seq"),
            raw=data,
            _client=client,
        )

    def complete(self, result: Any = None):
        """Complete the task (a repeat returns the first result)."""
        return self._client.complete_task(self.id, result)

    def fail(self, error: str = "", *, retry: bool = False):
        """Give the task up: `retry=True` puts it back in the queue (until max_attempts)."""
        return self._client.fail_task(self.id, error, retry=retry)

    def heartbeat(self, ttl: int | None = None):
        """Extend the claim."""
        return self._client.heartbeat_task(self.id, ttl=ttl)


@dataclass
class Lease:
    """A held lock. `fencing_token` goes with every write to a `locked` namespace."""

    id: int
    resources: list[str]
    fencing_token: int
    mode: str = "exclusive"
    ttl_seconds: int = 0
    expires_at: str | None = None
    agent: str = ""
    active: bool = True
    seq: int | None = None
    lost: bool = False  # `with hub.lock(...)`: the lease lapsed or was taken away while held
    reentered: bool = False
    holder_token: str | None = field(default=None, repr=False)  # the proof of holding, to re-enter it
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    _client: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], client: Any = None) -> Lease:
        return cls(
            id=int(data["id"]),
            resources=list(data.get("resources") or []),
            fencing_token=int(data.get("fencing_token") or 0),
            mode=data.get("mode", "exclusive"),
            ttl_seconds=int(data.get("ttl_seconds") or 0),
            expires_at=data.get("expires_at"),
            agent=data.get("agent", ""),
            active=bool(data.get("active", True)),
            seq=data.get("seq"),
            reentered=bool(data.get("reentered", False)),
            holder_token=data.get("holder_token"),
            raw=data,
            _client=client,
        )

    def release(self, reason: str = ""):
        return self._client.release(self.id, reason=reason, holder_token=self.holder_token)

    def heartbeat(self, ttl: int | None = None):
        return self._client.heartbeat_lock(self.id, ttl=ttl or self.ttl_seconds or None, holder_token=self.holder_token)


@dataclass
class Activity:
    """What others did on a resource lately, and whether the caller should go ahead."""

    resource: str
    proceed: bool
    defer_to: str | None
    reason: str
    events: list[Event]
    until: str | None = None
    hold: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Activity:
        return cls(
            resource=data.get("resource", ""),
            proceed=bool(data.get("proceed", True)),
            defer_to=data.get("defer_to"),
            reason=_get(data, "reason", ""),
            events=[Event.from_dict(e) for e in data.get("events") or []],
            until=data.get("until"),
            hold=data.get("hold"),
            raw=data,
        )


@dataclass
class Agent:
    """`me()`: the caller, with the namespace patterns it may read and write."""

    id: str
    role: str
    status: str = "active"
    name: str = ""
    kind: str = "agent"
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    last_seen_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agent:
        return cls(
            id=data.get("id", ""),
            role=data.get("role", ""),
            status=data.get("status", "active"),
            name=_get(data, "name", ""),
            kind=data.get("kind", "agent"),
            reads=list(data.get("reads") or []),
            writes=list(data.get("writes") or []),
            last_seen_at=data.get("last_seen_at"),
            raw=data,
        )
