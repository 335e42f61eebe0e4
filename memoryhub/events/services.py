"""Appending to the provenance log. Every service calls `events_append` inside its transaction,
after its other writes (the sequence row lock is then held only for the last moments before commit).
A record of something that changed nothing (a refused write) goes through `event_record`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.api.idempotency import Claim, claim_found, claim_with_change
from memoryhub.context import Caller
from memoryhub.search.tasks import embeddings_wanted

from . import queries
from .models import Event
from .publisher import publish_events
from .types import EVENT_TYPES

# Memory events that change content: search embeds the new version after commit.
CONTENT_TYPES = frozenset({"memory.created", "memory.updated", "memory.reverted"})


@dataclass(slots=True)
class NewEvent:
    type: str
    summary: str = ""
    namespace: str = ""
    # Every namespace it touches, when more than `namespace` (see Event.namespaces).
    namespaces: list[str] | None = None
    resource: str = ""
    version: int | None = None
    before: Any = None
    after: Any = None
    reason: str = ""
    audience: list[str] = field(default_factory=list)
    actor: Actor | None = None  # defaults to the caller of events_append


def events_append(*, actor: Actor, events: Sequence[NewEvent]) -> list[Event]:
    if not connection.in_atomic_block:
        raise RuntimeError("events must be appended inside the transaction of the change they record")
    for new in events:
        if new.type not in EVENT_TYPES:
            raise ValueError(f"{new.type!r} is not an event type (memoryhub/events/types.py)")
    return _append(actor, events)


def event_record(*, actor: Actor, type: str, **fields: Any) -> Event:
    """Append an event that records no change (a refused write): in the caller's transaction if there
    is one, else in one of its own. On PostgreSQL that is the one statement in autocommit, which the
    server commits as it runs: the sequence row is held for that statement alone, not across the
    client's BEGIN and COMMIT round trips."""
    new = [NewEvent(type=type, **fields)]
    if type not in EVENT_TYPES:
        raise ValueError(f"{type!r} is not an event type (memoryhub/events/types.py)")
    if connection.in_atomic_block:
        return events_append(actor=actor, events=new)[0]
    if connection.vendor == "postgresql":
        return _append(actor, new)[0]
    with transaction.atomic():
        return events_append(actor=actor, events=new)[0]


def _append(actor: Actor, events: Sequence[NewEvent]) -> list[Event]:
    # A request's events carry its Idempotency-Key (the adapter put it in the request context), and
    # its change's transaction records the key, before the sequence row is taken (a duplicate waits on
    # the key's row, not on the log): see memoryhub/api/idempotency.py.
    key = actor.idempotency_key if isinstance(actor, Caller) else ""
    claim = actor.idempotency_claim if isinstance(actor, Caller) else None
    rows = [
        Event(
            type=new.type,
            actor_kind=(new.actor or actor).kind,
            actor_id=(new.actor or actor).id,
            actor_role=(new.actor or actor).role,
            namespace=new.namespace,
            namespaces=new.namespaces,
            resource=new.resource,
            version=new.version,
            summary=new.summary[:500],
            before=new.before,
            after=new.after,
            reason=new.reason,
            idempotency_key=key,
            audience=new.audience,
        )
        for new in events
    ]
    if connection.vendor == "postgresql":
        # One statement claims the key and appends the events: a keyed refusal recorded in autocommit
        # gets both or neither, and the retry of a change that committed under this key is answered
        # by the key (KeyTaken), not recorded as a refusal of its own (its If-Match is stale because
        # its first attempt succeeded).
        if claim is None:
            queries.numbered_insert(rows)
        else:
            _numbered_claiming(rows, claim)
    else:
        if claim is not None:
            claim_with_change(claim)
        last = queries.next_seqs(len(rows))
        # Taken after the sequence lock, so `at` never goes backwards as seq goes forwards.
        now = timezone.now()
        for offset, row in enumerate(rows):
            row.seq, row.at = last - len(rows) + 1 + offset, now
        queries.insert(rows)
    for row in rows:
        row._state.adding = False  # they are stored now; Event.save() refuses to update them
    transaction.on_commit(lambda: publish_events(rows))
    if any(row.type in CONTENT_TYPES for row in rows):
        transaction.on_commit(embeddings_wanted)  # search: embed the new version, off the request path
    return rows


def _numbered_claiming(rows: list[Event], claim: Claim) -> None:
    while not queries.numbered_insert(rows, claim=claim):
        if claim_found(claim):  # this request's own record, from an earlier transaction of it
            queries.numbered_insert(rows)
            return


def event_append(*, actor: Actor, type: str, **fields: Any) -> Event:
    return events_append(actor=actor, events=[NewEvent(type=type, **fields)])[0]
