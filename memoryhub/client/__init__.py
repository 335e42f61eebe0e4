"""The Python client of memoryhub: `HubClient` (blocking) and `AsyncHubClient` (asyncio), same methods.

    from memoryhub.client import HubClient
    hub = HubClient("http://127.0.0.1:8000", token=TOKEN)      # or MEMORYHUB_URL / MEMORYHUB_TOKEN
    mem = hub.get("code:review", "pr-1")
    hub.put("code:review", "pr-1", {"verdict": "lgtm"}, version=mem.version, reason="review done")
    hub.update("counter:stock", "sku-42", lambda c: {**c, "n": c["n"] + 1})
    with hub.lock("memory:inventory:sku-1/count", ttl=30) as lease:
        hub.put("inventory:sku-1", "count", {"units": 2}, fencing_token=lease.fencing_token)

Depends only on httpx, websockets and the standard library (no Django)."""

from ._base import Retry, merge_patch
from .aio import AsyncHubClient
from .errors import (
    AgentSuspended,
    AlreadyClaimed,
    Conflict,
    FieldNotOwned,
    Forbidden,
    Held,
    HubError,
    IdempotencyKeyReused,
    Invalid,
    LeaseExpired,
    LockHeld,
    MalformedJSON,
    NotFound,
    PreconditionRequired,
    ServerError,
    StaleFencingToken,
    Throttled,
    TooLarge,
    TransportError,
    Unauthenticated,
    VersionConflict,
)
from .models import Activity, Agent, ContextEntry, Event, Lease, Memory, Page, Receipt, SearchPage, SearchResult, Task
from .sync import EventStream, HubClient, LockContext

__all__ = [
    "Activity",
    "Agent",
    "AgentSuspended",
    "AlreadyClaimed",
    "AsyncHubClient",
    "Conflict",
    "ContextEntry",
    "Event",
    "EventStream",
    "FieldNotOwned",
    "Forbidden",
    "Held",
    "HubClient",
    "HubError",
    "IdempotencyKeyReused",
    "Invalid",
    "Lease",
    "LeaseExpired",
    "LockContext",
    "Page",
    "LockHeld",
    "MalformedJSON",
    "Memory",
    "NotFound",
    "PreconditionRequired",
    "Receipt",
    "Retry",
    "SearchPage",
    "SearchResult",
    "ServerError",
    "StaleFencingToken",
    "Task",
    "Throttled",
    "TooLarge",
    "TransportError",
    "Unauthenticated",
    "VersionConflict",
    "merge_patch",
]
