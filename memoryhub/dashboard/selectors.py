"""Reads the dashboard needs beyond the apps' own selectors: summaries across apps (agents with their
load, inbox backlog per role, charts over time), the namespace tree, filtered event and inbox pages.

Only staff reach the dashboard and humans may read everything (SPEC 2), so these read without
per-namespace filtering; the apps' selectors are used wherever they already answer the question.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from contexts.models import ContextEntry, Receipt
from memoryhub.agents.models import Agent
from memoryhub.events.models import Event
from memoryhub.events.types import event_type_filters
from memoryhub.locks.models import Lease, LockWait
from memoryhub.memories.content import diff as content_diff
from memoryhub.memories.models import Memory
from memoryhub.tasks.models import Task, TaskStatus
from policies.decide import PolicySet
from policies.readable import glob_q

# --- agents -------------------------------------------------------------------------------------------


def agents_overview(*, limit: int = 500) -> list[dict[str, Any]]:
    """Every agent with what it holds right now: active leases, claimed tasks, unread inbox."""
    now = timezone.now()
    agents = list(Agent.objects.order_by("id")[:limit])
    ids = [agent.id for agent in agents]
    leases = dict(
        Lease.objects.filter(agent_id__in=ids, released_at=None, expires_at__gt=now)
        .values_list("agent_id")
        .annotate(n=Count("id"))
    )
    claims = dict(
        Task.objects.filter(claimed_by_id__in=ids, status=TaskStatus.CLAIMED)
        .values_list("claimed_by_id")
        .annotate(n=Count("id"))
    )
    unread = dict(
        _live_receipts(now).filter(agent_id__in=ids, read_at=None).values_list("agent_id").annotate(n=Count("id"))
    )
    return [
        {
            "agent": agent,
            "leases": leases.get(agent.id, 0),
            "claims": claims.get(agent.id, 0),
            "unread": unread.get(agent.id, 0),
        }
        for agent in agents
    ]


def roles_known() -> list[str]:
    return sorted(set(Agent.objects.values_list("role", flat=True)))


def agent_ids() -> list[str]:
    return list(Agent.objects.order_by("id").values_list("id", flat=True)[:1000])


# --- inbox ----------------------------------------------------------------------------------------------


def _live_receipts(now: datetime) -> QuerySet[Receipt]:
    """Receipts of entries still in inboxes: not marked expired by the sweeper, and not of the few
    entries past their expiry it has not swept yet (found on entry_pending_expiry). No join to the
    entries: with one, PostgreSQL hashed all of them (200,000: 25 ms per count) to count 7,000 unread
    receipts that the partial indexes find in 1 ms."""
    lapsed = ContextEntry.objects.filter(expired_at=None, expires_at__lte=now).values("id")
    return Receipt.objects.filter(entry_expired=False).exclude(entry_id__in=lapsed)


def inbox_backlog(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per recipient role: unread receipts, receipts awaiting an ack, and the oldest unread entry. Two
    queries, each on its partial index (receipt_unread_live, receipt_unacked_live), so the cost is the
    backlog's, not every receipt ever sent (one query with `unread OR unacked` read them all)."""
    now = now or timezone.now()
    live = _live_receipts(now)
    unread = {
        row["agent__role"]: row
        for row in live.filter(read_at=None)
        .values("agent__role")
        .annotate(n=Count("id"), first=Min("entry"))
        .order_by()
    }
    # Entry ids grow with time: the oldest unread entry is the one of the smallest id.
    created = dict(
        ContextEntry.objects.filter(id__in=[row["first"] for row in unread.values()]).values_list("id", "created_at")
    )
    awaiting = dict(
        live.filter(acked_at=None, requires_ack=True).values_list("agent__role").annotate(n=Count("id")).order_by()
    )
    return [
        {
            "role": role,
            "unread": unread[role]["n"] if role in unread else 0,
            "awaiting_ack": awaiting.get(role, 0),
            "oldest": created.get(unread[role]["first"]) if role in unread else None,
        }
        for role in sorted({*unread, *awaiting})
    ]


INBOX_STATES = ("all", "unread", "unacked")


def inbox_entries(
    *,
    to_role: str = "",
    agent: str = "",
    state: str = "all",
    context_type: str = "",
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int | None]:
    """Entries newest first with every recipient's receipt. `to_role` narrows to entries sent to that
    role or received by its agents, `agent` to entries that agent received; `state` applies to the
    receipts so chosen (else to any recipient's). Returns the page and the id to continue before
    (None at the end)."""
    now = timezone.now()
    entries = ContextEntry.objects.order_by("-id")
    if context_type:
        entries = entries.filter(context_type=context_type)
    if before:
        entries = entries.filter(id__lt=before)
    receipts = Receipt.objects.all()
    if agent:
        receipts = receipts.filter(agent_id=agent)
    if to_role:
        receipts = receipts.filter(agent__role=to_role)
    if state == "unread":
        receipts = receipts.filter(read_at=None)
    elif state == "unacked":
        receipts = receipts.filter(acked_at=None, requires_ack=True)
    if agent or state != "all":
        entries = entries.filter(id__in=receipts.values("entry_id"))
    elif to_role:
        # Sent to the role, or received by one of its agents (entries sent to one agent directly).
        entries = entries.filter(Q(to_role=to_role) | Q(id__in=receipts.values("entry_id")))
    page = list(entries[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    by_entry: dict[int, list[Receipt]] = {}
    for receipt in Receipt.objects.filter(entry_id__in=[e.id for e in page]).order_by("agent_id"):
        by_entry.setdefault(receipt.entry_id, []).append(receipt)
    results = []
    for entry in page:
        expired = entry.expired_at is not None or (entry.expires_at is not None and entry.expires_at <= now)
        results.append({"entry": entry, "receipts": by_entry.get(entry.id, []), "expired": expired})
    return results, (page[-1].id if more else None)


def context_types() -> list[str]:
    return sorted(set(ContextEntry.objects.values_list("context_type", flat=True).distinct()[:200]))


# --- charts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    key: str
    name: str
    label: str
    span: timedelta
    step: timedelta
    trunc: type


RANGES = {
    "1h": Range("1h", "last hour", "last hour, per minute", timedelta(hours=1), timedelta(minutes=1), TruncMinute),
    "24h": Range("24h", "last 24 hours", "last 24 hours, per hour", timedelta(hours=24), timedelta(hours=1), TruncHour),
    "7d": Range("7d", "last 7 days", "last 7 days, per day", timedelta(days=7), timedelta(days=1), TruncDay),
}


def _floor(moment: datetime, step: timedelta) -> datetime:
    seconds = int(step.total_seconds())
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def _counts(queryset: QuerySet, field_name: str, trunc: type) -> dict[datetime, int]:
    rows = queryset.annotate(bucket=trunc(field_name, tzinfo=UTC)).values("bucket").annotate(n=Count("pk"))
    return {row["bucket"]: row["n"] for row in rows}


def activity_timeline(*, range_key: str = "1h", now: datetime | None = None) -> dict[str, Any]:
    """Counts per time bucket for the overview's charts:
    - conflicts: refused stale writes (`conflict.rejected`: version conflicts, stale fencing tokens);
    - lock contention: acquisitions that had to wait, waits that gave up, leases that lapsed
      (a crashed or stalled holder) and `alert.lock_wait` alerts."""
    selected = RANGES.get(range_key, RANGES["1h"])
    now = now or timezone.now()
    end = _floor(now, selected.step)
    start = end - selected.span + selected.step
    buckets = []
    moment = start
    while moment <= end:
        buckets.append(moment)
        moment += selected.step

    def series(queryset: QuerySet, field_name: str) -> list[int]:
        counts = _counts(queryset.filter(**{f"{field_name}__gte": start}), field_name, selected.trunc)
        return [counts.get(bucket, 0) for bucket in buckets]

    events = Event.objects.all()
    fmt = "%H:%M" if selected.step < timedelta(days=1) else "%b %d"
    return {
        "range": selected.key,
        "range_label": selected.label,
        "labels": [bucket.strftime(fmt) for bucket in buckets],
        "conflicts": series(events.filter(type="conflict.rejected"), "at"),
        "lock_waits": series(LockWait.objects.all(), "started_at"),
        "lock_timeouts": series(LockWait.objects.filter(outcome="timeout"), "ended_at"),
        "lock_expired": series(events.filter(type="lock.expired"), "at"),
        "lock_alerts": series(events.filter(type="alert.lock_wait"), "at"),
    }


# --- memories -------------------------------------------------------------------------------------------


@dataclass
class TreeNode:
    name: str  # this level's segment
    path: str  # the namespace (or prefix) it stands for
    leaf: bool = True  # a namespace with no namespaces below it (`path:...`)
    namespace: bool = False  # memories live directly in `path`


TREE_PAGE = 100


def namespace_children(
    prefix: str = "", *, after: str | None = None, limit: int = TREE_PAGE
) -> tuple[list[TreeNode], str | None]:
    """One level of the namespace tree: the distinct `:` segments below `prefix` (`""` or ending in
    `:`) that hold live memories, in order, at most `limit`, and where the next page starts (None on
    the last). No count over the table: each child is one descent of the namespace index (the first
    namespace past the previous child's range), so a page costs the same with 20 namespaces or 10,000.
    Ranges follow the database's order of namespaces, which is binary on SQLite and on PostgreSQL
    databases with the C collation (the recommended setup)."""
    live = Memory.objects.filter(deleted_at=None).filter(Q(expires_at=None) | Q(expires_at__gt=timezone.now()))
    if prefix:
        live = live.filter(namespace__gte=prefix, namespace__lt=_prefix_upper(prefix))
    nodes: dict[str, TreeNode] = {}
    position = after
    while len(nodes) <= limit:
        rows = live.filter(namespace__gt=position) if position is not None else live
        name = rows.order_by("namespace").values_list("namespace", flat=True).first()
        if name is None:
            return list(nodes.values()), None
        segment, below, _ = name[len(prefix) :].partition(":")
        path = prefix + segment
        if len(nodes) == limit and path not in nodes:
            return list(nodes.values()), position
        node = nodes.setdefault(path, TreeNode(name=segment, path=path))
        if below:
            node.leaf = False
            # Past every namespace below this child: their characters all sort below DEL.
            position = path + ":\x7f"
        else:
            node.namespace = True
            position = name
    return list(nodes.values()), position


def _prefix_upper(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def version_diff(before: Any, after: Any) -> dict[str, Any]:
    """A readable diff of two contents: the changed top-level fields, and the pretty-printed JSON
    line by line (`+` added, `-` removed, ` ` context)."""
    fields = content_diff(before, after)
    old = pretty(before).splitlines() if before is not None else []
    new = pretty(after).splitlines() if after is not None else []
    lines = []
    for line in difflib.unified_diff(old, new, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        kind = {"@": "hunk", "+": "add", "-": "del"}.get(line[:1], "ctx")
        lines.append({"kind": kind, "text": line})
    return {
        "added": sorted(fields["added"].items()),
        "removed": sorted(fields["removed"].items()),
        "changed": sorted(fields["changed"].items()),
        "lines": lines,
        "same": not lines,
    }


# --- events ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventQuery:
    actor: str = ""
    namespace: str = ""
    resource: str = ""
    type: str = ""
    start: datetime | None = None
    end: datetime | None = None


def events_filtered(query: EventQuery) -> QuerySet[Event]:
    """The events matching the dashboard's filters (ascending). `namespace` may be a glob and `type`
    a prefix ending in `*`, as in the API."""
    events = Event.objects.order_by("seq")
    if query.actor:
        events = events.filter(actor_id=query.actor)
    if query.namespace:
        events = (
            events.filter(glob_q(query.namespace, vendor=connection.vendor))  # the literal prefix as a range
            if "*" in query.namespace
            else events.filter(namespace=query.namespace)
        )
    if query.resource:
        events = events.filter(resource=query.resource)
    if query.type:
        events = (
            events.filter(type__startswith=query.type[:-1])
            if query.type.endswith("*")
            else events.filter(type=query.type)
        )
    if query.start:
        events = events.filter(at__gte=query.start)
    if query.end:
        events = events.filter(at__lt=query.end)
    return events


EXPORT_BATCH = 2000


def events_export_batches(
    query: EventQuery, *, after: int, end: int, batch: int = EXPORT_BATCH
) -> Iterator[list[Event]]:
    """The filtered events with `after` < seq <= `end` (the log's last seq when the export started:
    the range it promises; seqs commit in order, so none appears later inside it), oldest first, in
    keyset batches. Each batch is one indexed query in a short transaction of its own: nothing is
    materialised whole, no server-side cursor outlives its transaction, memory stays flat."""
    position = after
    while position < end:
        with transaction.atomic():
            rows = list(events_filtered(query).filter(seq__gt=position, seq__lte=end)[:batch])
        if not rows:
            return
        yield rows
        position = rows[-1].seq


def events_page(query: EventQuery, *, before: int | None = None, limit: int = 100) -> tuple[list[Event], int | None]:
    """One page, newest first, and the seq to continue before (None at the end)."""
    events = events_filtered(query).order_by("-seq")
    if before:
        events = events.filter(seq__lt=before)
    page = list(events[: limit + 1])
    return page[:limit], (page[limit - 1].seq if len(page) > limit else None)


def recent_events(*, limit: int = 30) -> list[Event]:
    return list(Event.objects.order_by("-seq")[:limit])


def event_types() -> list[str]:
    """The filter's suggestions: every type the log records (memoryhub.events.types)."""
    return event_type_filters()


# --- tasks ----------------------------------------------------------------------------------------------


def tasks_page(
    *, status: str = "", role: str = "", kind: str = "", before: int | None = None, limit: int = 100
) -> tuple[list[Task], int | None]:
    tasks = Task.objects.order_by("-id")
    if status:
        tasks = tasks.filter(status=status)
    if role:
        tasks = tasks.filter(role=role)
    if kind:
        tasks = tasks.filter(kind=kind)
    if before:
        tasks = tasks.filter(id__lt=before)
    page = list(tasks[: limit + 1])
    return page[:limit], (page[limit - 1].id if len(page) > limit else None)


# --- policies -------------------------------------------------------------------------------------------


def describe_roles(roles: tuple[str, ...] | list[str]) -> str:
    if not roles:
        return "nobody (agents); humans only"
    parts = []
    for role in roles:
        if role == "*":
            parts.append("every role")
        elif role == "self":
            parts.append("the agent named by the trailing *")
        else:
            parts.append(role)
    return ", ".join(parts)


def access_matrix(policies: PolicySet, roles: list[str]) -> list[dict[str, Any]]:
    """Per namespace pattern, what each role may do there (by that rule alone: where several patterns
    match a namespace, the most specific one decides)."""

    def cell(rule, role: str) -> str:
        def may(granted: tuple[str, ...]) -> str:
            if "*" in granted or role in granted:
                return "yes"
            return "self" if "self" in granted else ""

        read, write = may(rule.readers), may(rule.writers)
        if read == "yes" and write == "yes":
            return "read + write"
        if read == "self" and write == "self":
            return "own only"
        labels = []
        if read:
            labels.append("read" if read == "yes" else "read own")
        if write:
            labels.append("write" if write == "yes" else "write own")
        return " + ".join(labels)

    return [{"rule": rule, "cells": [cell(rule, role) for role in roles]} for rule in policies.namespaces]
