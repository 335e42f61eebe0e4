from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from memoryhub.actors import Actor
from memoryhub.memories.content import check_glob
from policies.readable import glob_q
from policies.selectors import policies_for

from .models import Event
from .visibility import EventFilter, visible_q, with_audience_text

SCAN_BATCH = 500
MAX_SCAN = 20_000


def last_seq() -> int:
    return Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def events_visible(
    *,
    actor: Actor,
    since: int = 0,
    namespace: str | None = None,
    resource: str | None = None,
    actor_id: str | None = None,
    type: str | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """Events after `since` the caller may see, ascending. Returns them and the seq to continue from
    (past everything scanned, so a caller who may see little still moves forward)."""
    vendor = connection.vendor
    policies = policies_for(actor)
    # Visibility as SQL first (index ranges of the readable namespaces), rechecked per row below.
    queryset = with_audience_text(Event.objects.filter(seq__gt=since), vendor).filter(
        visible_q(actor, policies, vendor=vendor)
    )
    queryset = queryset.order_by("seq")
    if namespace and "*" in namespace:
        check_glob(namespace)
        queryset = queryset.filter(glob_q(namespace, vendor=vendor))  # the literal prefix as a range
    elif namespace:
        queryset = queryset.filter(namespace=namespace)
    if resource:
        queryset = queryset.filter(resource=resource)
    if actor_id:
        queryset = queryset.filter(actor_id=actor_id)
    if type:
        queryset = queryset.filter(type__startswith=type[:-1]) if type.endswith("*") else queryset.filter(type=type)
    visible = EventFilter(actor, policies)
    results: list[dict[str, Any]] = []
    cursor = since
    scanned = 0
    while len(results) < limit and scanned < MAX_SCAN:
        batch = list(queryset.filter(seq__gt=cursor)[:SCAN_BATCH])
        if not batch:
            break
        for event in batch:
            cursor = event.seq
            scanned += 1
            if visible.visible_row(event):
                results.append(visible.shown(event))
                if len(results) >= limit:
                    break
        if len(batch) < SCAN_BATCH:
            break
    return results, cursor


def events_with_key(*, actor: Actor, key: str, since: datetime) -> list[Event]:
    """The events `actor`'s requests appended under this Idempotency-Key since about `since`, oldest
    first: what a repeat rebuilds a lost answer from (memoryhub/api/idempotency.py)."""
    # A minute's slack: the record's time is the server process's clock, an event's the database's.
    return list(
        Event.objects.filter(
            actor_kind=actor.kind, actor_id=actor.id, idempotency_key=key, at__gte=since - timedelta(minutes=1)
        ).order_by("seq")
    )
