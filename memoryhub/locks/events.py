"""What lock and hold events record."""

from __future__ import annotations

from typing import Any, TypedDict

from memoryhub.actors import Actor
from memoryhub.events.services import NewEvent

from .models import Lease
from .names import resource_namespace
from .selectors import iso


class _EventPlace(TypedDict):
    namespace: str
    resource: str


def event_place(names: list[str]) -> _EventPlace:
    return {"namespace": resource_namespace(names[0]), "resource": ",".join(names)}


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
