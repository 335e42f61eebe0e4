"""`alert.lock_wait`: raised once for a lease held (still active) longer than twice its ttl, and once
for a wait lasting longer than twice its expected duration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from memoryhub.actors import SYSTEM
from memoryhub.events.services import event_append

from .events import event_place
from .models import Lease, LockWait


def _held_too_long(lease: Lease, now: datetime) -> tuple[str, dict[str, Any]] | None:
    held = (now - lease.acquired_at).total_seconds()
    if held <= 2 * lease.ttl_seconds:
        return None
    summary = (
        f"{lease.agent_id} has held {', '.join(lease.resources)} for {held:.0f}s, "
        f"more than twice its {lease.ttl_seconds}s ttl"
    )
    return summary, {
        "kind": "held_too_long",
        "lease_id": lease.id,
        "agent": lease.agent_id,
        "resources": lease.resources,
        "held_seconds": round(held, 3),
        "ttl_seconds": lease.ttl_seconds,
    }


def _waited_too_long(wait: LockWait, now: datetime) -> tuple[str, dict[str, Any]] | None:
    end = wait.ended_at or min(now, wait.deadline)
    waited = (end - wait.started_at).total_seconds()
    if waited <= 2 * wait.expected_seconds:
        return None
    summary = (
        f"{wait.agent_id} waited {waited:.1f}s for {', '.join(wait.resources)}, more than twice "
        f"the {wait.expected_seconds:.1f}s expected"
    )
    return summary, {
        "kind": "waited_too_long",
        "wait_id": wait.id,
        "agent": wait.agent_id,
        "resources": wait.resources,
        "blocked_by": wait.blocked_by,
        "waited_seconds": round(waited, 3),
        "expected_seconds": round(wait.expected_seconds, 3),
        "outcome": wait.outcome or "waiting",
    }


def _raise_each[M: Lease | LockWait](
    candidates: QuerySet[M], check: Callable[[M, datetime], tuple[str, dict[str, Any]] | None], now: datetime
) -> int:
    raised = 0
    for row in candidates:
        found = check(row, now)
        if found is None:
            continue
        summary, after = found
        with transaction.atomic():
            # Compare-and-set on alerted_at: two sweepers never alert twice.
            model: type[Model] = type(row)
            if not model._default_manager.filter(pk=row.pk, alerted_at=None).update(alerted_at=now):
                continue
            event_append(
                actor=SYSTEM,
                type="alert.lock_wait",
                **event_place(row.resources),
                summary=summary,
                after=after,
                audience=[f"agent:{row.agent_id}"],
            )
            raised += 1
    return raised


def lock_alerts_raise(*, now: datetime | None = None) -> int:
    """Raise the alerts due (the sweeper calls this); how many were raised."""
    now = now or timezone.now()
    leases = Lease.objects.filter(released_at=None, expires_at__gt=now, alerted_at=None)
    waits = LockWait.objects.filter(alerted_at=None, started_at__gte=now - timedelta(days=1))
    return _raise_each(leases, _held_too_long, now) + _raise_each(waits, _waited_too_long, now)
