"""Reading memories: current state, past versions rebuilt from the log, history with diffs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from memoryhub import cursors
from memoryhub.actors import Actor
from memoryhub.errors import Invalid, NotFound
from memoryhub.events.models import Event
from memoryhub.times import iso
from policies.decide import PolicySet, decide_read
from policies.readable import glob_q, readable_q
from policies.selectors import policies_for

from .content import check_glob, check_names, diff
from .models import Memory
from .queries import fetch_memory

MEMORY_EVENT_TYPES = (
    "memory.created",
    "memory.updated",
    "memory.deleted",
    "memory.reverted",
    "memory.expired",
)
CONTENT_EVENT_TYPES = ("memory.created", "memory.updated", "memory.reverted")


def memory_to_dict(memory: Memory, *, readable: bool = True) -> dict[str, Any]:
    """The memory as the API shows it. A caller that may write the namespace but not read it
    (`readable=False`) learns that the memory exists, its version, who wrote it and when, never what
    it holds: no `content`, no `reason` (another writer's words)."""
    shown: dict[str, Any] = {
        "namespace": memory.namespace,
        "key": memory.key,
        "kind": memory.kind,
        "content": memory.content,
        "version": memory.version,
        "created_by": memory.created_by,
        "updated_by": memory.updated_by,
        "created_at": iso(memory.created_at),
        "updated_at": iso(memory.updated_at),
        "expires_at": iso(memory.expires_at),
        "reason": memory.reason,
    }
    if not readable:
        del shown["content"], shown["reason"]
    return shown


def _live(queryset):
    return queryset.filter(deleted_at=None).filter(Q(expires_at=None) | Q(expires_at__gt=timezone.now()))


def _check_readable(actor: Actor, namespace: str, key: str, policies: PolicySet | None = None) -> None:
    check_names(namespace, key)
    if not decide_read(policies or policies_for(actor), actor, namespace).allowed:
        # Not 403: a caller who may not read a namespace learns nothing about what is in it.
        raise NotFound(f"no memory {namespace}/{key}")


def _memory_events(namespace: str, key: str):
    return Event.objects.filter(resource=f"{namespace}/{key}", type__in=MEMORY_EVENT_TYPES)


def _version_event(namespace: str, key: str, version: int, types: tuple[str, ...] = MEMORY_EVENT_TYPES) -> Event | None:
    """The event of one version, by the (resource, version) index. No ORDER BY seq in SQL (not even
    Meta.ordering's): with one,
    PostgreSQL walks the (resource, seq) index back over every newer version instead (measured:
    0.46 s at 50,000 versions). A version is written once, so the rows are one or very few."""
    rows = list(_memory_events(namespace, key).filter(version=version, type__in=types).order_by()[:16])
    return max(rows, key=lambda event: event.seq) if rows else None


def _last_seq_at(as_of: datetime) -> int | None:
    """The newest seq committed at or before `as_of` (seq and `at` grow together: `at` is read while
    the sequence row is locked): one descent of the `at` index, so a memory's past is then found by
    the (resource, seq) index however many versions it has."""
    return Event.objects.filter(at__lte=as_of).order_by("-at", "-seq").values_list("seq", flat=True).first()


def _past_state(memory: Memory, event: Event | None, label: str) -> dict[str, Any]:
    if event is None or event.type not in CONTENT_EVENT_TYPES:
        raise NotFound(f"{memory.namespace}/{memory.key} had no content {label}")
    return {
        **memory_to_dict(memory),
        "content": event.after,
        "version": event.version,
        "updated_by": event.actor_label,
        "updated_at": iso(event.at),
        "reason": event.reason,
        "expires_at": None,
    }


def memory_get(
    *, actor: Actor, namespace: str, key: str, version: int | None = None, as_of: datetime | None = None
) -> dict[str, Any]:
    _check_readable(actor, namespace, key)
    memory = fetch_memory(namespace, key)
    if memory is None:
        raise NotFound(f"no memory {namespace}/{key}")
    if version is not None:
        return _past_state(memory, _version_event(namespace, key, version), f"at version {version}")
    if as_of is not None:
        bound = _last_seq_at(as_of)
        event = (
            None if bound is None else _memory_events(namespace, key).filter(seq__lte=bound).order_by("-seq").first()
        )
        return _past_state(memory, event, f"at {as_of.isoformat()}")
    if memory.deleted_at is not None or (memory.expires_at and memory.expires_at <= timezone.now()):
        raise NotFound(f"no memory {namespace}/{key}")
    return memory_to_dict(memory)


def version_content(*, namespace: str, key: str, version: int) -> Any:
    event = _version_event(namespace, key, version, CONTENT_EVENT_TYPES)
    return event.after if event else None


HISTORY_PAGE = 50
MAX_HISTORY_PAGE = 200
MAX_PAGE = 500
MAX_OFFSET = 1000  # `offset` still works for the first pages; deeper pages need `cursor`


def version_to_dict(event: Event) -> dict[str, Any]:
    return {
        "version": event.version,
        "type": event.type,
        "seq": event.seq,
        "at": iso(event.at),
        "actor": {"kind": event.actor_kind, "id": event.actor_id, "role": event.actor_role},
        "reason": event.reason,
        "content": event.after,
        "diff": diff(event.before, event.after),
    }


def memory_history(
    *, actor: Actor, namespace: str, key: str, limit: int = HISTORY_PAGE, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of versions, newest first: who (kind, id, role), when, why, and what changed; and the
    cursor of the next (older) page, None on the last. Each page is one range of the (resource, seq)
    index, so a page costs the same with 50 versions or 50,000."""
    _check_readable(actor, namespace, key)
    bound = cursors.fingerprint(namespace=namespace, key=key)
    after = cursors.decode(cursor, "history", bound, arity=1)
    events = _memory_events(namespace, key).order_by("-seq")
    if after is not None:
        events = events.filter(seq__lt=cursors.position_int(after[0]))
    page = list(events[: limit + 1])
    if not page and after is None:
        raise NotFound(f"no memory {namespace}/{key}")
    more = len(page) > limit
    page = page[:limit]
    return [version_to_dict(event) for event in page], (
        cursors.encode("history", [page[-1].seq], bound) if more else None
    )


def memory_version(*, actor: Actor, namespace: str, key: str, version: int) -> dict[str, Any] | None:
    """One version as history shows it (the (resource, version) index), or None if it never was."""
    _check_readable(actor, namespace, key)
    event = _version_event(namespace, key, version)
    return version_to_dict(event) if event else None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("cursor is not one this server issued", cursor=["invalid or tampered cursor"])
    return value


def memories_list(
    *,
    actor: Actor,
    namespace: str | None = None,
    kind: str | None = None,
    q: str | None = None,
    updated_by: str | None = None,
    limit: int = 100,
    offset: int = 0,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of live memories the caller may read, by namespace then key, and the cursor of the
    next page (None on the last). `namespace` may be a glob. Everything is one query: readability is
    readable_q's condition on the namespace column (exact names and prefix ranges the index serves),
    a glob is its literal prefix as a range, and the page starts after the cursor's (namespace, key)
    instead of skipping rows."""
    vendor = connection.vendor
    queryset = _live(Memory.objects.all()).filter(readable_q(policies_for(actor), actor, vendor=vendor))
    if namespace:
        if "*" in namespace:
            check_glob(namespace)
            queryset = queryset.filter(glob_q(namespace, vendor=vendor))
        else:
            queryset = queryset.filter(namespace=namespace)
    if kind:
        queryset = queryset.filter(kind=kind)
    if updated_by:
        queryset = queryset.filter(updated_by=updated_by)
    if q:
        queryset = queryset.annotate(text=Cast("content", TextField())).filter(
            Q(key__icontains=q) | Q(text__icontains=q)
        )
    bound = cursors.fingerprint(namespace=namespace, kind=kind, q=q, updated_by=updated_by)
    after = cursors.decode(cursor, "memories", bound, arity=2)
    if after is not None:
        last_namespace, last_key = _str(after[0]), _str(after[1])
        # `namespace >= n` bounds the index range; the OR only drops the start of namespace n.
        queryset = queryset.filter(namespace__gte=last_namespace).filter(
            Q(namespace__gt=last_namespace) | Q(key__gt=last_key)
        )
    rows = list(queryset.order_by("namespace", "key")[offset : offset + limit + 1])
    page = rows[:limit]
    following = cursors.encode("memories", [page[-1].namespace, page[-1].key], bound) if len(rows) > limit else None
    return [memory_to_dict(memory) for memory in page], following


def memory_written(*, actor: Actor, namespace: str, key: str, key_events: list[Event]) -> dict[str, Any] | None:
    """A write's answer rebuilt from the log: the memory as the last of `key_events` (the events of
    one request, see events_with_key) left it, with that event's seq; None when they hold no write of
    this memory. What a repeat of a write whose answer was lost gets (memoryhub/api/idempotency.py)."""
    resource = f"{namespace}/{key}"
    written = [event for event in key_events if event.resource == resource and event.type in MEMORY_EVENT_TYPES]
    memory = fetch_memory(namespace, key) if written else None
    if memory is None:
        return None
    event = written[-1]
    readable = decide_read(policies_for(actor), actor, namespace).allowed
    shown = {
        **memory_to_dict(memory, readable=readable),
        "version": event.version,
        "updated_by": event.actor_label,
        "updated_at": iso(event.at),
        "seq": event.seq,
        "created": event.type == "memory.created",
    }
    if readable:
        shown["content"] = event.after if event.type in CONTENT_EVENT_TYPES else None
        shown["reason"] = event.reason
    return shown
