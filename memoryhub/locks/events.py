"""What lock and hold events record."""

from __future__ import annotations

from typing import Any, TypedDict

from memoryhub.actors import Actor
from memoryhub.events.services import NewEvent

from .models import Lease
from .names import resource_namespace
from .selectors import iso

# The types whose events may be about several lock names at once.
MULTI_RESOURCE_TYPES = ("lock.acquired", "lock.released", "lock.expired", "lock.force_released", "alert.lock_wait")


class _EventPlace(TypedDict):
    namespace: str
    namespaces: list[str] | None
    resource: str


def event_place(names: list[str]) -> _EventPlace:
    """Where an event about these lock names is filed. One name: its namespace and the name. Several
    (a multi-resource lock, still one event for one change): `namespaces` lists every namespace they
    denote, sorted ("" for a name that denotes none), and the event is visible only to callers who may
    read every one of them (memoryhub/events/visibility.py); `namespace` is the first, for filters;
    `resource` is blank, the names being in the event's lease state (`resources`), so no joined string
    can outgrow the column."""
    namespaces = sorted({resource_namespace(name) for name in names})
    if len(names) == 1:
        return {"namespace": namespaces[0], "namespaces": None, "resource": names[0]}
    return {"namespace": namespaces[0], "namespaces": namespaces if len(namespaces) > 1 else None, "resource": ""}


def event_names(event) -> list[str]:
    """The lock names a lock or alert event is about (see event_place)."""
    if event.resource:
        return [event.resource]
    state = event.after if isinstance(event.after, dict) else event.before
    names = state.get("resources") if isinstance(state, dict) else None
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def lease_state(lease: Lease) -> dict[str, Any]:
    return {
        "lease_id": lease.id,
        "agent": lease.agent_id,
        "mode": lease.mode,
        "resources": lease.resources,
        "depth": lease.depth,
        "fencing_token": lease.fencing_token,
        "ttl_seconds": lease.ttl_seconds,
        "expires_at": iso(lease.expires_at),
    }


def lease_event(
    type: str,
    lease: Lease,
    *,
    summary: str,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    actor: Actor | None = None,
) -> NewEvent:
    """An event about one lease: filed where its resources are, addressed to its holder too."""
    return NewEvent(
        type=type,
        actor=actor,
        **event_place(lease.resources),
        summary=summary,
        before=before,
        after=after,
        reason=reason,
        audience=[f"agent:{lease.agent_id}"],
    )
