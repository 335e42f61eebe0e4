"""Reading the context inbox: entries, receipts, who may see what.

Who may see an entry: its sender, the agents it is addressed to (its `to_agent`, or any agent of its
`to_role`), humans, and agents whose role may read the entry's namespace (`inbox:<role>` or
`inbox:agent:<id>`) by policy. Anyone else is told it does not exist (404, no existence leak).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.agents.models import Agent
from memoryhub.errors import Forbidden, Invalid, NotFound
from memoryhub.times import iso
from policies.decide import PolicySet, decide_read
from policies.selectors import policies_for

from .models import ContextEntry, Receipt
from .queries import INBOX_STATES as INBOX_STATES
from .queries import MAX_PAGE, aware
from .queries import inbox_query as inbox_query

InboxState = Literal["unread", "unacked", "all"]
MAX_ID = 2**63 - 1  # ids are bigints: a larger number in a URL is simply not found


def entry_namespace(*, to_role: str = "", to_agent: str | None = None) -> str:
    return f"inbox:{to_role}" if to_role else f"inbox:agent:{to_agent}"


def entry_to_dict(entry: ContextEntry) -> dict[str, Any]:
    """An entry as the API returns it and the websocket pushes it (the `context` frame); no receipts."""
    return {
        "id": entry.id,
        "from_agent": entry.from_agent_id,
        "from_role": entry.from_role,
        "sender": entry.sender,
        "to_role": entry.to_role or None,
        "to_agent": entry.to_agent_id,
        "namespace": entry.namespace,
        "context_type": entry.context_type,
        "subject": entry.subject,
        "content": entry.content,
        "requires_ack": entry.requires_ack,
        "reply_to": entry.reply_to_id,
        "thread_id": entry.thread_id,
        "created_at": iso(entry.created_at),
        "expires_at": iso(entry.expires_at),
        "expired_at": iso(entry.expired_at),
    }


def receipt_to_dict(receipt: Receipt) -> dict[str, Any]:
    return {
        "entry": receipt.entry_id,
        "agent": receipt.agent_id,
        "read_at": iso(receipt.read_at),
        "acked_at": iso(receipt.acked_at),
        "ack_note": receipt.ack_note,
    }


def entry_visible(*, actor: Actor, entry: ContextEntry, policies: PolicySet | None = None) -> bool:
    if actor.kind in ("human", "system"):
        return True
    if actor.id in (entry.from_agent_id, entry.to_agent_id) or (entry.to_role and entry.to_role == actor.role):
        return True
    return decide_read(policies or policies_for(actor), actor, entry.namespace).allowed


def entry_for(*, actor: Actor, entry_id: int) -> ContextEntry:
    """The entry if the caller may see it, else NotFound (absent and invisible look the same)."""
    entry = ContextEntry.objects.filter(id=entry_id).first() if 0 < entry_id <= MAX_ID else None
    if entry is None or not entry_visible(actor=actor, entry=entry):
        raise NotFound(f"no context entry {entry_id}")
    return entry


def context_get(*, actor: Actor, entry_id: int) -> dict[str, Any]:
    """The entry with every recipient's receipt (expired entries included: they stay in the log)."""
    entry = entry_for(actor=actor, entry_id=entry_id)
    receipts = Receipt.objects.filter(entry=entry).order_by("agent_id")
    return {**entry_to_dict(entry), "receipts": [receipt_to_dict(r) for r in receipts]}


def inbox_owner(*, actor: Actor, agent_id: str | None = None) -> str:
    """Whose inbox the caller reads: an agent its own; a human (who has none) the agent it names."""
    if actor.is_agent:
        if agent_id and agent_id != actor.id:
            raise Forbidden("agents may read only their own inbox", agent=agent_id)
        return actor.id
    if not agent_id:
        raise Invalid("humans have no inbox: pass agent=<agent id> to look at an agent's", agent=["required"])
    if not Agent.objects.filter(id=agent_id).exists():
        raise NotFound(f"no agent {agent_id!r}")
    return agent_id


def _json(value: Any) -> Any:
    # Both backends hand JSON columns to a raw cursor as text (Django registers a text loader for jsonb).
    return json.loads(value) if isinstance(value, str | bytes) else value


def inbox_list(
    *,
    agent_id: str,
    state: str = "unread",
    context_type: str | None = None,
    since: int = 0,
    limit: int = 100,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Entries addressed to the agent (to its role when sent, or to it), not expired, oldest first,
    each with the agent's own receipt. Reads only: listing marks nothing read.

    An entry past `expires_at` leaves the inbox at once, before the sweeper records its expiry (which
    then takes its receipts out of the indexes)."""
    sql, params = inbox_query(
        agent_id=agent_id,
        state=state,
        context_type=context_type,
        since=since,
        limit=limit,
        now=now or timezone.now(),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        {
            "id": row[0],
            "from_agent": row[1],
            "from_role": row[2],
            "sender": row[3],
            "to_role": row[4] or None,
            "to_agent": row[5],
            "namespace": row[6],
            "context_type": row[7],
            "subject": row[8],
            "content": _json(row[9]),
            "requires_ack": bool(row[10]),
            "reply_to": row[11],
            "thread_id": row[12],
            "created_at": iso(aware(row[13])),
            "expires_at": iso(aware(row[14])),
            "expired_at": iso(aware(row[15])),
            "receipt": {
                "agent": row[16],
                "read_at": iso(aware(row[17])),
                "acked_at": iso(aware(row[18])),
                "ack_note": row[19],
            },
        }
        for row in rows
    ]


def _visibility_filter(actor: Actor, policies: PolicySet) -> Q | None:
    """SQL for "entries this agent may see"; None means everything (humans, system).

    Policy readability is decided per namespace in Python (most-specific-wins does not go into SQL),
    over the namespaces that can exist: `inbox:<role>` for every role agents have and
    `inbox:agent:<id>` for every agent (a small table). An entry addressed to a role that no agent
    has any more is still found by its `to_role` filter, or by id.
    """
    if actor.kind in ("human", "system"):
        return None
    visible = Q(from_agent_id=actor.id) | Q(to_agent_id=actor.id) | Q(to_role=actor.role)
    roles = [
        role
        for role in Agent.objects.values_list("role", flat=True).distinct()
        if decide_read(policies, actor, entry_namespace(to_role=role)).allowed
    ]
    agents = [
        agent_id
        for agent_id in Agent.objects.values_list("id", flat=True)
        if decide_read(policies, actor, entry_namespace(to_agent=agent_id)).allowed
    ]
    if roles:
        visible |= Q(to_role__in=roles)
    if agents:
        visible |= Q(to_agent_id__in=agents)
    return visible


def contexts_list(
    *,
    actor: Actor,
    from_role: str | None = None,
    to_role: str | None = None,
    to_agent: str | None = None,
    from_agent: str | None = None,
    context_type: str | None = None,
    thread_id: int | None = None,
    since: int = 0,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """Entries the caller may see, ascending by id after `since` (expired ones included: this is the
    log, not an inbox), each with counts of its receipts. Returns them and the id to continue from."""
    policies = policies_for(actor)
    queryset: QuerySet[ContextEntry] = ContextEntry.objects.filter(id__gt=since)
    if from_role:
        queryset = queryset.filter(from_role=from_role)
    if from_agent:
        queryset = queryset.filter(from_agent_id=from_agent)
    if to_role:
        queryset = queryset.filter(to_role=to_role)
    if to_agent:
        queryset = queryset.filter(to_agent_id=to_agent)
    if context_type:
        queryset = queryset.filter(context_type=context_type)
    if thread_id is not None:
        queryset = queryset.filter(Q(thread_id=thread_id) | Q(id=thread_id))
    visible = _visibility_filter(actor, policies)
    if visible is not None:
        extra = Q()
        if to_role and decide_read(policies, actor, entry_namespace(to_role=to_role)).allowed:
            extra = Q(to_role=to_role)
        queryset = queryset.filter(visible | extra) if extra else queryset.filter(visible)
    entries = list(queryset.order_by("id")[: min(max(limit, 1), MAX_PAGE)])
    counts = {
        row["entry_id"]: row
        for row in Receipt.objects.filter(entry_id__in=[e.id for e in entries])
        .values("entry_id")
        .annotate(
            recipients=Count("id"),
            read=Count("id", filter=Q(read_at__isnull=False)),
            acked=Count("id", filter=Q(acked_at__isnull=False)),
        )
    }
    results = []
    for entry in entries:
        row: Mapping[str, Any] = counts.get(entry.id, {})
        results.append(
            {
                **entry_to_dict(entry),
                "receipt_counts": {
                    "recipients": row.get("recipients", 0),
                    "read": row.get("read", 0),
                    "acked": row.get("acked", 0),
                },
            }
        )
    return results, (entries[-1].id if entries else since)
