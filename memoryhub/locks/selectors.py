"""Reading locks, waits, contention and holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.db.models import F, Model, QuerySet
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.times import iso
from policies.decide import decide_read
from policies.selectors import policies_for

from . import queries
from .models import Hold, Lease, LeaseResource, LockResource, LockWait
from .names import covering_names, resource_namespace


def current_exclusive_lease(resource: str) -> Lease | None:
    """The unexpired exclusive lease on a resource (expired leases are free at once)."""
    return queries.exclusive_lease_on(resource)


def lease_to_dict(lease: Lease, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    return {
        "id": lease.id,
        "agent": lease.agent_id,
        "resources": lease.resources,
        "mode": lease.mode,
        "fencing_token": lease.fencing_token,
        "ttl_seconds": lease.ttl_seconds,
        "depth": lease.depth,
        "acquired_at": iso(lease.acquired_at),
        "expires_at": iso(lease.expires_at),
        "heartbeat_at": iso(lease.heartbeat_at),
        "released_at": iso(lease.released_at),
        "release_reason": lease.release_reason or ("expired" if lease.expires_at <= now else ""),
        "active": lease.released_at is None and lease.expires_at > now,
    }


def wait_to_dict(wait: LockWait) -> dict[str, Any]:
    return {
        "id": wait.id,
        "agent": wait.agent_id,
        "resources": wait.resources,
        "mode": wait.mode,
        "blocked_by": wait.blocked_by,
        "started_at": iso(wait.started_at),
        "expected_until": iso(wait.expected_until),
        "deadline": iso(wait.deadline),
    }


def _visible_to(actor: Actor):
    """Lock names reveal what they name (a memory's key, a namespace's business): an agent sees a
    lock, a wait or a contention row only if it may read every namespace its names denote
    (`resource_namespace`: the same rule as for their events), or if it is its own."""
    if actor.kind != "agent":
        return lambda names, owner=None: True
    policies = policies_for(actor)
    cache: dict[str, bool] = {}

    def visible(names: Iterable[str], owner: str | None = None) -> bool:
        if owner == actor.id:
            return True
        for name in names:
            namespace = resource_namespace(name)
            if namespace not in cache:
                cache[namespace] = bool(namespace) and decide_read(policies, actor, namespace).allowed
            if not cache[namespace]:
                return False
        return True

    return visible


def leases_active(
    *, actor: Actor, resource: str | None = None, agent: str | None = None, limit: int = 200
) -> dict[str, list[dict[str, Any]]]:
    """Active leases (unreleased, unexpired) and open waits, optionally on a resource or by an agent."""
    now = timezone.now()
    leases = Lease.objects.filter(released_at=None, expires_at__gt=now).order_by("id")
    waits = LockWait.objects.filter(ended_at=None, deadline__gt=now).order_by("id")
    if resource:
        leases = leases.filter(held__resource=resource, held__active=True)
    if agent:
        leases = leases.filter(agent_id=agent)
        waits = waits.filter(agent_id=agent)
    visible = _visible_to(actor)
    shown_leases = _first_kept(leases, limit, lambda lease: visible(lease.resources, lease.agent_id))
    shown_waits = _first_kept(
        waits,
        limit,
        lambda wait: (not resource or resource in wait.resources) and visible(wait.resources, wait.agent_id),
    )
    return {
        "results": [lease_to_dict(lease, now=now) for lease in shown_leases],
        "waiting": [wait_to_dict(wait) for wait in shown_waits],
    }


def _first_kept[Row: Model](rows: QuerySet[Row], limit: int, keep: Callable[[Row], bool]) -> list[Row]:
    """The first `limit` of the ordered `rows` that `keep` admits, read a page at a time: a caller who
    may see few of them still gets a full page (visibility is per lock name, decided in Python)."""
    kept: list[Row] = []
    start = 0
    while len(kept) < limit:
        page = list(rows[start : start + limit])
        kept += [row for row in page if keep(row)]
        if len(page) < limit:
            break
        start += limit
    return kept[:limit]


def lease_visible(actor: Actor, lease: Lease) -> bool:
    """May the caller learn that this lease exists (its own, or on names it may read)?"""
    return _visible_to(actor)(lease.resources, lease.agent_id)


def lease_get(*, actor: Actor, lease_id: int) -> Lease | None:
    lease = Lease.objects.filter(id=lease_id).first()
    return lease if lease is not None and lease_visible(actor, lease) else None


def lock_contention(*, actor: Actor, limit: int = 100) -> list[dict[str, Any]]:
    """Per-resource counters, the most contended first, with current holders and waiters."""
    now = timezone.now()
    rows = LockResource.objects.order_by(
        (F("denied_count") + F("waited_count")).desc(), F("acquired_count").desc(), "name"
    )
    visible = _visible_to(actor)
    results = _first_kept(rows, limit, lambda row: visible([row.name]))
    names = [row.name for row in results]
    holding: dict[str, int] = {}
    for name in LeaseResource.objects.filter(resource__in=names, active=True, lease__expires_at__gt=now).values_list(
        "resource", flat=True
    ):
        holding[name] = holding.get(name, 0) + 1
    waiting: dict[str, int] = {}
    for wait in LockWait.objects.filter(ended_at=None, deadline__gt=now):
        for name in wait.resources:
            waiting[name] = waiting.get(name, 0) + 1
    return [
        {
            "resource": row.name,
            "acquired_count": row.acquired_count,
            "denied_count": row.denied_count,
            "waited_count": row.waited_count,
            "expired_count": row.expired_count,
            "wait_ms_total": row.wait_ms_total,
            "avg_wait_ms": round(row.wait_ms_total / row.waited_count) if row.waited_count else 0,
            "holders": holding.get(row.name, 0),
            "waiting": waiting.get(row.name, 0),
        }
        for row in results
    ]


def hold_to_dict(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "resource": hold.resource,
        "placed_by": hold.placed_by,
        "reason": hold.reason,
        "placed_at": iso(hold.placed_at),
        "lifted_at": iso(hold.lifted_at),
        "lifted_by": hold.lifted_by,
        "active": hold.lifted_at is None,
    }


def hold_visible(actor: Actor, hold: Hold) -> bool:
    """May the caller see this hold (its resource, who placed it, why)? The rule of lock names: only if
    it may read the namespace the held name denotes (humans see every hold)."""
    return _visible_to(actor)([hold.resource])


def holds_list(
    *, actor: Actor, active: bool = True, resource: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The holds the caller may see (filtered before the limit, so none it may not see is counted)."""
    holds = Hold.objects.all()
    if active:
        holds = holds.filter(lifted_at=None)
    if resource:
        holds = holds.filter(resource__in=covering_names(resource))
    visible = _visible_to(actor)
    shown: list[dict[str, Any]] = []
    for hold in holds.iterator(chunk_size=limit):
        if visible([hold.resource]):
            shown.append(hold_to_dict(hold))
            if len(shown) >= limit:
                break
    return shown


def hold_get(*, actor: Actor, hold_id: int) -> Hold | None:
    """The hold, or None when there is none or the caller may not see it (the same answer)."""
    hold = Hold.objects.filter(id=hold_id).first()
    return hold if hold is not None and hold_visible(actor, hold) else None
