from __future__ import annotations

from typing import Any

from memoryhub.times import iso

from .models import Event


def event_to_dict(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "type": event.type,
        "at": iso(event.at),
        "actor": {"kind": event.actor_kind, "id": event.actor_id, "role": event.actor_role},
        "namespace": event.namespace,
        "resource": event.resource,
        "version": event.version,
        "summary": event.summary,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "idempotency_key": event.idempotency_key,
    }
