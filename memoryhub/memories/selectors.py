"""Reading memories: current state, past versions rebuilt from the log, history with diffs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.errors import NotFound
from memoryhub.events.models import Event
from memoryhub.times import iso
from policies.decide import PolicySet, decide_read, glob_to_regex
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
    return Event.objects.filter(resource=f"{namespace}/{key}", type__in=MEMORY_EVENT_TYPES).order_by("seq")


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
        return _past_state(
            memory, _memory_events(namespace, key).filter(version=version).last(), f"at version {version}"
        )
    if as_of is not None:
        event = _memory_events(namespace, key).filter(at__lte=as_of).order_by("-seq").first()
        return _past_state(memory, event, f"at {as_of.isoformat()}")
    if memory.deleted_at is not None or (memory.expires_at and memory.expires_at <= timezone.now()):
        raise NotFound(f"no memory {namespace}/{key}")
    return memory_to_dict(memory)


def version_content(*, namespace: str, key: str, version: int) -> Any:
    event = _memory_events(namespace, key).filter(version=version, type__in=CONTENT_EVENT_TYPES).last()
    return event.after if event else None


def memory_history(*, actor: Actor, namespace: str, key: str) -> list[dict[str, Any]]:
    """Every version, oldest first: who (kind, id, role), when, why, and what changed."""
    _check_readable(actor, namespace, key)
    events = list(_memory_events(namespace, key))
    if not events:
        raise NotFound(f"no memory {namespace}/{key}")
    return [
        {
            "version": event.version,
            "type": event.type,
            "seq": event.seq,
            "at": iso(event.at),
            "actor": {"kind": event.actor_kind, "id": event.actor_id, "role": event.actor_role},
            "reason": event.reason,
            "content": event.after,
            "diff": diff(event.before, event.after),
        }
        for event in events
    ]


def memories_list(
    *,
    actor: Actor,
    namespace: str | None = None,
    kind: str | None = None,
    q: str | None = None,
    updated_by: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Live memories the caller may read, by namespace then key. `namespace` may be a glob."""
    queryset = _live(Memory.objects.all())
    if namespace:
        if "*" in namespace:
            check_glob(namespace)
            queryset = queryset.filter(namespace__regex=glob_to_regex(namespace))
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
    policies = policies_for(actor)
    readable: dict[str, bool] = {}
    results: list[dict[str, Any]] = []
    skipped = 0
    # Readability is decided per namespace (most-specific-wins cannot be pushed into SQL), in batches.
    for memory in queryset.order_by("namespace", "key").iterator(chunk_size=500):
        if memory.namespace not in readable:
            readable[memory.namespace] = decide_read(policies, actor, memory.namespace).allowed
        if not readable[memory.namespace]:
            continue
        if skipped < offset:
            skipped += 1
            continue
        results.append(memory_to_dict(memory))
        if len(results) >= limit:
            break
    return results


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
