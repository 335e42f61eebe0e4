"""Writing to the context inbox: send, read, ack, expire. Each state change is one transaction that
changes the rows and appends its event; the event is published (and the websocket pushes the entry)
after commit.

Receipts are made for every recipient agent AT SEND TIME, in the send transaction: one row per agent
of `to_role` (the sender excepted), or the one `to_agent`. An inbox query is then an index range on
the receipt table for (agent, unread), however large the entry table grows. The price of that design,
kept on purpose: an agent that joins a role later does not inherit the role's older entries (it may
still see them with `GET contexts/?to_role=`, but they are not in its inbox and it cannot ack them).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from memoryhub.actors import SYSTEM, Actor
from memoryhub.agents.models import Agent
from memoryhub.errors import Forbidden, Invalid, NotFound, TooLarge
from memoryhub.events.models import Event
from memoryhub.events.services import NewEvent, event_append, events_append
from memoryhub.memories.content import content_size
from policies.decide import best_match
from policies.selectors import policies_for

from . import queries
from .models import ContextEntry, Receipt
from .selectors import aware, entry_for, entry_namespace, entry_to_dict, receipt_to_dict

MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
MAX_BULK_ACK = 1000
CONTEXT_TYPE_RE = re.compile(r"\A[A-Za-z0-9_.:-]{1,100}\Z")  # \Z: `$` lets a final newline through


def _resource(entry: ContextEntry) -> str:
    return f"context:{entry.id}"


def _audience(entry: ContextEntry, reader: str | None = None) -> list[str]:
    """Who sees the event whatever the namespace policy says: the sender, and the addressee (the
    role or agent) for a sent/expired entry, or only the one reader for its read/ack."""
    audience = [f"agent:{entry.from_agent_id}"] if entry.from_agent_id else []
    if reader:
        audience.append(f"agent:{reader}")
    else:
        audience.append(f"role:{entry.to_role}" if entry.to_role else f"agent:{entry.to_agent_id}")
    return audience


def _target(entry: ContextEntry) -> str:
    return entry.to_role or f"@{entry.to_agent_id}"


def _recipient_errors(*, actor: Actor, to_role: str | None, to_agent: str | None) -> dict[str, list[str]]:
    """The addressee checks that need the database. A send that succeeds does not run them: its
    receipt INSERT ... SELECT finds the recipients in the send transaction, and only a send that made
    no receipt, or that fails for another reason, asks why (so errors are reported as before)."""
    errors: dict[str, list[str]] = {}
    if to_role and not Agent.objects.filter(role=to_role).exists():
        errors["to_role"] = [f"no agent has the role {to_role!r}"]
    if to_agent and not (actor.is_agent and to_agent == actor.id) and not Agent.objects.filter(id=to_agent).exists():
        errors["to_agent"] = [f"no agent {to_agent!r}"]
    return errors


def _raise_invalid(errors: dict[str, list[str]]) -> NoReturn:
    raise Invalid(next(f"{name}: {msgs[0]}" for name, msgs in errors.items()), **errors)


def _raise_if_no_recipient(*, actor: Actor, to_role: str | None, to_agent: str | None) -> None:
    if errors := _recipient_errors(actor=actor, to_role=to_role, to_agent=to_agent):
        _raise_invalid(errors)


def _validate_send(
    *,
    actor: Actor,
    to_role: str | None,
    to_agent: str | None,
    context_type: str,
    content: Any,
    subject: str,
    ttl_seconds: int | None,
) -> None:
    """Everything about a send that needs no query; see `_recipient_errors` for the rest."""
    errors: dict[str, list[str]] = {}
    if bool(to_role) == bool(to_agent):
        message = "send to exactly one of to_role and to_agent"
        raise Invalid(message, to_role=[message], to_agent=[message])
    if to_agent and actor.is_agent and to_agent == actor.id:
        errors["to_agent"] = ["an agent cannot send an entry to itself"]
    if not isinstance(context_type, str) or not CONTEXT_TYPE_RE.match(context_type):
        errors["context_type"] = ["1-100 letters, digits, '_', '.', ':' or '-'"]
    if not isinstance(content, dict):
        errors["content"] = ["must be a JSON object"]
    if not isinstance(subject, str) or len(subject) > 600:
        errors["subject"] = ["a string of at most 600 characters"]
    if ttl_seconds is not None and not (isinstance(ttl_seconds, int) and 0 < ttl_seconds <= MAX_TTL_SECONDS):
        errors["ttl_seconds"] = ["between 1 and 10 years, in seconds"]
    if errors:
        _raise_invalid({**_recipient_errors(actor=actor, to_role=to_role, to_agent=to_agent), **errors})


def context_send(
    *,
    actor: Actor,
    to_role: str | None = None,
    to_agent: str | None = None,
    context_type: str,
    content: Any,
    subject: str = "",
    ttl_seconds: int | None = None,
    requires_ack: bool = False,
    reply_to: int | None = None,
) -> tuple[ContextEntry, Event]:
    """Send an entry to a role or to one agent. The sender fields come from `actor` only.

    Receipts are made here, one per recipient agent (never for the sender itself); agents that join
    the role later do not inherit this entry (see the module docstring)."""
    _validate_send(
        actor=actor,
        to_role=to_role,
        to_agent=to_agent,
        context_type=context_type,
        content=content,
        subject=subject,
        ttl_seconds=ttl_seconds,
    )
    namespace = entry_namespace(to_role=to_role or "", to_agent=to_agent)
    rule = best_match(policies_for(actor).namespaces, namespace, lambda r: r.pattern)
    limit = (rule[0].max_content_bytes if rule else None) or settings.MEMORYHUB_MAX_CONTENT_BYTES
    size = content_size(content)
    if size > limit:
        _raise_if_no_recipient(actor=actor, to_role=to_role, to_agent=to_agent)
        raise TooLarge(f"content is {size} bytes; {namespace} allows {limit}", size=size, limit=limit)
    if ttl_seconds is None and rule and rule[0].default_ttl_seconds:
        ttl_seconds = rule[0].default_ttl_seconds

    parent = None
    if reply_to is not None:
        try:
            parent = entry_for(actor=actor, entry_id=reply_to)
        except NotFound:
            _raise_if_no_recipient(actor=actor, to_role=to_role, to_agent=to_agent)
            raise Invalid(f"reply_to: no context entry {reply_to} that you may see", reply_to=["no such entry"])

    with transaction.atomic():
        now = timezone.now()
        entry = ContextEntry(
            from_agent_id=actor.id if actor.is_agent else None,
            from_role=actor.role if actor.is_agent else actor.kind,
            sender=actor.label,
            to_role=to_role or "",
            to_agent_id=to_agent or None,
            namespace=namespace,
            context_type=context_type,
            subject=subject,
            content=content,
            requires_ack=requires_ack,
            reply_to=parent,
            thread_id=(parent.thread_id or parent.id) if parent else None,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds) if ttl_seconds else None,
        )
        receipts = queries.entry_insert_with_receipts(entry)
        if not receipts:
            # No agent of the role but possibly the sender, or no such agent: the error (if it is one)
            # rolls the entry back with this transaction.
            _raise_if_no_recipient(actor=actor, to_role=to_role, to_agent=to_agent)
        event = event_append(
            actor=actor,
            type="context.sent",
            namespace=namespace,
            resource=_resource(entry),
            summary=f"{actor.label} -> {_target(entry)}: {context_type} {subject}".rstrip(),
            after=entry_to_dict(entry),
            audience=_audience(entry),
        )
    return entry, event


def _receipt_for(*, actor: Actor, entry: ContextEntry, on_behalf_of: str | None) -> Receipt:
    """The receipt the caller acts on: its own, or (humans only) the named agent's."""
    if on_behalf_of and on_behalf_of != actor.id and not actor.is_human:
        raise Forbidden("only humans may act on behalf of another agent", on_behalf_of=on_behalf_of)
    agent_id = on_behalf_of or actor.id
    receipt = (
        Receipt.objects.filter(entry=entry, agent_id=agent_id).first() if (actor.is_agent or on_behalf_of) else None
    )
    if receipt is None:
        who = "you are" if agent_id == actor.id else f"{agent_id} is"
        raise Forbidden(f"{who} not a recipient of context entry {entry.id}", entry=entry.id, agent=agent_id)
    return receipt


def context_read(*, actor: Actor, entry_id: int) -> tuple[Receipt, Event | None]:
    """Mark the caller's receipt read. A repeat changes nothing and appends no event (event None)."""
    with transaction.atomic():
        entry = entry_for(actor=actor, entry_id=entry_id)
        receipt = _receipt_for(actor=actor, entry=entry, on_behalf_of=None)
        # Compare-and-set: of two concurrent reads only the one that finds read_at empty records it.
        now = timezone.now()
        if not Receipt.objects.filter(id=receipt.id, read_at=None).update(read_at=now):
            receipt.refresh_from_db()
            return receipt, None
        receipt.read_at = now
        event = event_append(
            actor=actor,
            type="context.read",
            namespace=entry.namespace,
            resource=_resource(entry),
            summary=f"{receipt.agent_id} read #{entry.id} from {entry.sender}",
            after=receipt_to_dict(receipt),
            audience=_audience(entry, receipt.agent_id),
        )
    return receipt, event


def _acked_event(
    *, actor: Actor, entry_id: int, namespace: str, sender: str, from_agent_id: str | None, receipt: Receipt
) -> NewEvent:
    by = "" if actor.is_agent and actor.id == receipt.agent_id else f" (by {actor.label})"
    audience = [f"agent:{from_agent_id}"] if from_agent_id else []
    return NewEvent(
        type="context.acked",
        namespace=namespace,
        resource=f"context:{entry_id}",
        summary=f"{receipt.agent_id} acked #{entry_id} from {sender}{by}",
        after=receipt_to_dict(receipt),
        reason=receipt.ack_note,
        audience=[*audience, f"agent:{receipt.agent_id}"],
    )


def context_ack(
    *, actor: Actor, entry_id: int, note: str = "", on_behalf_of: str | None = None
) -> tuple[Receipt, Event | None]:
    """Acknowledge an entry (and mark it read). A repeat changes nothing, not even the note, and
    appends no event. A human may ack on behalf of a recipient agent: the event's actor is the human,
    its `after` names the agent."""
    if not isinstance(note, str) or len(note) > 2000:
        raise Invalid("note must be a string of at most 2000 characters", note=["too long"])
    with transaction.atomic():
        entry = entry_for(actor=actor, entry_id=entry_id)
        receipt = _receipt_for(actor=actor, entry=entry, on_behalf_of=on_behalf_of)
        written = queries.receipts_ack([receipt.id], note, timezone.now()).get(receipt.id)
        if written is None:
            receipt.refresh_from_db()
            return receipt, None
        receipt.read_at, receipt.acked_at = written
        receipt.ack_note = note
        event = events_append(
            actor=actor,
            events=[
                _acked_event(
                    actor=actor,
                    entry_id=entry.id,
                    namespace=entry.namespace,
                    sender=entry.sender,
                    from_agent_id=entry.from_agent_id,
                    receipt=receipt,
                )
            ],
        )[0]
    return receipt, event


def contexts_ack_bulk(
    *, actor: Actor, ids: list[int], note: str = "", on_behalf_of: str | None = None
) -> tuple[list[Receipt], list[Event]]:
    """Ack many entries of the caller's inbox at once, all or nothing: if any id has no receipt of
    the caller's (absent, not addressed to it, or not visible), nothing changes and NotFound lists
    them. Already-acked ones stay as they were (no event); the rest get one event each."""
    if not isinstance(note, str) or len(note) > 2000:
        raise Invalid("note must be a string of at most 2000 characters", note=["too long"])
    if not ids:
        raise Invalid("ids must list at least one entry id", ids=["empty"])
    if len(ids) > MAX_BULK_ACK:
        raise Invalid(f"at most {MAX_BULK_ACK} ids at once", ids=["too many"])
    if on_behalf_of and on_behalf_of != actor.id and not actor.is_human:
        raise Forbidden("only humans may act on behalf of another agent", on_behalf_of=on_behalf_of)
    agent_id = on_behalf_of or (actor.id if actor.is_agent else None)
    if agent_id is None:
        raise Invalid("humans have no inbox: pass on_behalf_of=<agent id>", on_behalf_of=["required"])
    wanted = sorted(set(ids))
    with transaction.atomic():
        rows = queries.receipts_lock_for_ack(agent_id=agent_id, entry_ids=wanted)
        missing = sorted(set(wanted) - {row[1] for row in rows})
        if missing:
            raise NotFound(
                f"not in {'your' if agent_id == actor.id else agent_id + chr(39) + 's'} inbox: "
                + ", ".join(map(str, missing)),
                missing=missing,
            )
        receipts = []
        new_events = []
        pending = [row[0] for row in rows if row[3] is None]
        written = queries.receipts_ack(pending, note, timezone.now()) if pending else {}
        for rid, entry_id, read_at, acked_at, ack_note, expired, namespace, sender, from_agent_id in rows:
            receipt = Receipt(
                id=rid,
                entry_id=entry_id,
                agent_id=agent_id,
                read_at=aware(read_at),
                acked_at=aware(acked_at),
                ack_note=ack_note,
                entry_expired=bool(expired),
            )
            receipt._state.adding, receipt._state.db = False, connection.alias
            if rid in written:
                receipt.read_at, receipt.acked_at = written[rid]
                receipt.ack_note = note
                new_events.append(
                    _acked_event(
                        actor=actor,
                        entry_id=entry_id,
                        namespace=namespace,
                        sender=sender,
                        from_agent_id=from_agent_id,
                        receipt=receipt,
                    )
                )
            receipts.append(receipt)
        events = events_append(actor=actor, events=new_events) if new_events else []
    return receipts, events


def contexts_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """For the sweeper: record the expiry of entries past `expires_at` (expired_at, and the
    receipts' entry_expired so they leave the inbox indexes), one `context.expired` event each
    (actor SYSTEM). Entries already left inboxes at `expires_at`; they stay in the log. Returns how
    many were expired (at most `limit` per call)."""
    now = now or timezone.now()
    with transaction.atomic():
        # A concurrent sweeper waits here, then skips rows the first one expired (WHERE re-checked).
        entries = list(
            ContextEntry.objects.select_for_update(no_key=True)
            .filter(expired_at=None, expires_at__lte=now)
            .order_by("id")[:limit]
        )
        if not entries:
            return 0
        ids = [entry.id for entry in entries]
        ContextEntry.objects.filter(id__in=ids).update(expired_at=now)
        # Lock receipts in (agent, entry) order before changing them: bulk acks lock theirs in the
        # same order, so the two never deadlock.
        list(
            Receipt.objects.select_for_update(no_key=True)
            .filter(entry_id__in=ids)
            .order_by("agent_id", "entry_id")
            .values_list("id", flat=True)
        )
        Receipt.objects.filter(entry_id__in=ids).update(entry_expired=True)
        new_events = []
        for entry in entries:
            entry.expired_at = now
            new_events.append(
                NewEvent(
                    type="context.expired",
                    namespace=entry.namespace,
                    resource=_resource(entry),
                    summary=f"#{entry.id} {entry.context_type} -> {_target(entry)} expired",
                    after=entry_to_dict(entry),
                    audience=_audience(entry),
                )
            )
        events_append(actor=SYSTEM, events=new_events)
    return len(entries)
