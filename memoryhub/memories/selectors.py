"""Reading memories: current state, past versions rebuilt from the log, history with diffs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from memoryhub import cursors, times
from memoryhub.actors import Actor
from memoryhub.errors import Invalid, NotFound
from memoryhub.events.models import Event
from memoryhub.tallies import selectors as tallies
from memoryhub.times import iso
from policies.decide import NamespaceRule, PolicySet, decide_read, namespace_rule
from policies.readable import glob_q, governed_q, readable_q
from policies.selectors import policies_for

from .content import check_glob, check_names, diff
from .lifecycle import Rules, is_stale, is_valid, stale_after, valid_q, why_invalid
from .models import Memory, MemoryKind
from .queries import fetch_memory

# The events that make a version (a state of the row) ...
MEMORY_EVENT_TYPES = (
    "memory.created",
    "memory.updated",
    "memory.deleted",
    "memory.reverted",
    "memory.expired",
)
CONTENT_EVENT_TYPES = ("memory.created", "memory.updated", "memory.reverted")
# ... and those of its lifecycle, which change no content and make no version.
INVALIDATING_EVENT_TYPES = ("memory.superseded", "memory.archived")
LIFECYCLE_EVENT_TYPES = ("memory.verified", "memory.stale", *INVALIDATING_EVENT_TYPES)


def memory_to_dict(
    memory: Memory, *, readable: bool = True, rule: NamespaceRule | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The memory as the API shows it. A caller that may write the namespace but not read it
    (`readable=False`) learns that the memory exists, its version, who wrote it and when, never what
    it holds: no `content`, no `reason` (another writer's words). `rule` is its namespace's policy,
    which says when it goes stale (a memory just written is never stale: writing verifies)."""
    now = now or times.now()
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
        "verified_at": iso(memory.verified_at),
        "verified_by": memory.verified_by,
        "stale": is_stale(memory, rule, now),
        "valid_until": iso(memory.valid_until),
        "superseded_by": memory.superseded_by or None,
        "superseded_at": iso(memory.superseded_at),
        "archived_at": iso(memory.archived_at),
        "derived_from": memory.derived_from,
    }
    if not readable:  # nor which other memories it names
        del shown["content"], shown["reason"], shown["superseded_by"], shown["derived_from"]
    return shown


def _live(queryset, *, include_invalid: bool = False):
    queryset = queryset.filter(deleted_at=None).filter(Q(expires_at=None) | Q(expires_at__gt=timezone.now()))
    return queryset if include_invalid else queryset.filter(valid_q(times.now()))


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
    current = event.version == memory.version
    return {
        **memory_to_dict(memory),
        "content": event.after,
        "version": event.version,
        "updated_by": event.actor_label,
        "updated_at": iso(event.at),
        "reason": event.reason,
        "expires_at": None,
        "stale": False,
        # Valid time as the row holds it belongs to its current version; an older version was valid
        # until the next one (or until an invalidating event, see _state_at).
        "valid_until": iso(memory.valid_until) if current else None,
        "superseded_by": None,
        "superseded_at": None,
        "archived_at": None,
        "derived_from": memory.derived_from if current else None,
    }


def _state_at(memory: Memory, as_of: datetime, include_invalid: bool) -> dict[str, Any]:
    """The memory as it was at `as_of` (transaction time, from the log) and whether it was valid then
    (valid time: superseded, archived or past its valid_until by that time)."""
    bound = _last_seq_at(as_of)  # then the (resource, seq) index, however many versions it has
    event = (
        None
        if bound is None
        else _memory_events(memory.namespace, memory.key).filter(seq__lte=bound).order_by("-seq").first()
    )
    state = _past_state(memory, event, f"at {as_of.isoformat()}")
    invalidated = (
        Event.objects.filter(
            resource=memory.resource, type__in=INVALIDATING_EVENT_TYPES, version=state["version"], at__lte=as_of
        )
        .order_by("seq")
        .first()
    )
    if invalidated is not None:
        after = invalidated.after or {}
        state["superseded_by"] = after.get("superseded_by")
        state["superseded_at" if invalidated.type == "memory.superseded" else "archived_at"] = iso(invalidated.at)
        why = f"superseded by {after.get('superseded_by')}" if state["superseded_by"] else "archived (summarized)"
    elif state["valid_until"] and memory.valid_until is not None and memory.valid_until <= as_of:
        why = f"not valid since {state['valid_until']}"
    else:
        return state
    if not include_invalid:
        raise NotFound(f"{memory.resource} was {why} at {as_of.isoformat()} (read it with include=invalid)")
    return state


def memory_get(
    *,
    actor: Actor,
    namespace: str,
    key: str,
    version: int | None = None,
    as_of: datetime | None = None,
    include_invalid: bool = False,
) -> dict[str, Any]:
    """The live memory (or one version of it, or its state at `as_of`). A memory superseded, past
    its valid_until or archived is not in default reads: `include_invalid` shows it."""
    policies = policies_for(actor)
    _check_readable(actor, namespace, key, policies)
    memory = fetch_memory(namespace, key)
    if memory is None:
        raise NotFound(f"no memory {namespace}/{key}")
    if version is not None:
        return _past_state(memory, _version_event(namespace, key, version), f"at version {version}")
    if as_of is not None:
        return _state_at(memory, as_of, include_invalid)
    if memory.deleted_at is not None or (memory.expires_at and memory.expires_at <= timezone.now()):
        raise NotFound(f"no memory {namespace}/{key}")
    now = times.now()
    if not include_invalid and not is_valid(memory, now):
        raise NotFound(f"{namespace}/{key} is {why_invalid(memory, now)} (read it with include=invalid)")
    return memory_to_dict(memory, rule=namespace_rule(policies, namespace), now=now)


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
    *,
    actor: Actor,
    namespace: str,
    key: str,
    limit: int = HISTORY_PAGE,
    cursor: str | None = None,
    lifecycle: bool = True,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of versions, newest first: who (kind, id, role), when, why, and what changed (between
    them the lifecycle's events: verified, stale, superseded by, archived, which change no content); and the
    cursor of the next (older) page, None on the last. Each page is one range of the (resource, seq)
    index, so a page costs the same with 50 versions or 50,000."""
    _check_readable(actor, namespace, key)
    bound = cursors.fingerprint(namespace=namespace, key=key, lifecycle=lifecycle)
    after = cursors.decode(cursor, "history", bound, arity=1)
    types = MEMORY_EVENT_TYPES + LIFECYCLE_EVENT_TYPES if lifecycle else MEMORY_EVENT_TYPES
    events = Event.objects.filter(resource=f"{namespace}/{key}", type__in=types).order_by("-seq")
    if after is not None:
        events = events.filter(seq__lt=cursors.position_int(after[0]))
    page = list(events[: limit + 1])
    if not page and after is None:
        raise NotFound(f"no memory {namespace}/{key}")
    more = len(page) > limit
    page = page[:limit]
    return [_lifecycle_entry(e) if e.type in LIFECYCLE_EVENT_TYPES else version_to_dict(e) for e in page], (
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


def _lifecycle_entry(event: Event) -> dict[str, Any]:
    return {
        "version": event.version,
        "type": event.type,
        "seq": event.seq,
        "at": iso(event.at),
        "actor": {"kind": event.actor_kind, "id": event.actor_id, "role": event.actor_role},
        "reason": event.reason,
        "summary": event.summary,
        **(event.after or {}),
    }


def task_namespace(task_id: int) -> str:
    """A task's working memory lives in `task:<id>` and below (its completion ends it)."""
    return f"task:{int(task_id)}"


def memories_list(
    *,
    actor: Actor,
    namespace: str | None = None,
    kind: str | None = None,
    q: str | None = None,
    updated_by: str | None = None,
    task: int | None = None,
    include_invalid: bool = False,
    limit: int = 100,
    offset: int = 0,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of live memories the caller may read, by namespace then key, and the cursor of the
    next page (None on the last). `namespace` may be a glob. Everything is one query: readability is
    readable_q's condition on the namespace column (exact names and prefix ranges the index serves),
    a glob is its literal prefix as a range, and the page starts after the cursor's (namespace, key)
    instead of skipping rows. `task` keeps a task's working memories (namespace `task:<id>` and
    below); superseded, past-validity and archived memories only with `include_invalid`."""
    vendor = connection.vendor
    policies = policies_for(actor)
    queryset = _live(Memory.objects.all(), include_invalid=include_invalid).filter(
        readable_q(policies, actor, vendor=vendor)
    )
    if task is not None:
        scope = task_namespace(task)
        queryset = queryset.filter(Q(namespace=scope) | Q(namespace__startswith=scope + ":"), kind=MemoryKind.WORKING)
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
    bound = cursors.fingerprint(
        namespace=namespace, kind=kind, q=q, updated_by=updated_by, task=task, include_invalid=include_invalid
    )
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
    rules, now = Rules(policies), times.now()
    return [memory_to_dict(memory, rule=rules(memory.namespace), now=now) for memory in page], following


def memory_written(*, actor: Actor, namespace: str, key: str, key_events: list[Event]) -> dict[str, Any] | None:
    """A write's answer rebuilt from the log: the memory as the last of `key_events` (the events of
    one request, see events_with_key) left it, with that event's seq; None when they hold no write of
    this memory. What a repeat of a write whose answer was lost gets (memoryhub/api/idempotency.py).
    What the write set is the event's (version, writer, time, content, and the verification every
    write is); what it did not (kind, expiry, validity, supersession) is the row's as it is now."""
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
        "verified_at": iso(event.at),
        "verified_by": event.actor_label,
        "seq": event.seq,
        "created": event.type == "memory.created",
    }
    if readable:
        shown["content"] = event.after if event.type in CONTENT_EVENT_TYPES else None
        shown["reason"] = event.reason
    return shown


def stale_memories(*, policies: PolicySet, now: datetime, limit: int = 500, unannounced: bool = False) -> list[Memory]:
    """Live, valid semantic memories past their namespace's stale_after_seconds, oldest verified first.
    With `unannounced`: only those not announced stale in the current period (the sweeper's work)."""
    found: list[Memory] = []
    for rule in policies.namespaces:
        period = stale_after(rule)
        if period is None:
            continue
        # A namespace under a more specific policy follows that one: left out before the limit.
        queryset = _live(Memory.objects.filter(kind=MemoryKind.SEMANTIC)).filter(
            governed_q(policies, rule, vendor=connection.vendor), verified_at__lte=now - period
        )
        if unannounced:
            queryset = queryset.filter(Q(stale_announced_at=None) | Q(stale_announced_at__lte=now - period))
        found += queryset.order_by("verified_at", "id")[:limit]
    return sorted(found, key=lambda m: (m.verified_at or m.updated_at, m.id))[:limit]


def stale_counts(*, policies: PolicySet, now: datetime) -> dict[str, int]:
    """How many stale semantic memories each namespace holds (for /metrics)."""
    counts: dict[str, int] = {}
    for rule in policies.namespaces:
        period = stale_after(rule)
        if period is None:
            continue
        rows = (
            _live(Memory.objects.filter(kind=MemoryKind.SEMANTIC))
            .filter(governed_q(policies, rule, vendor=connection.vendor), verified_at__lte=now - period)
            .values("namespace")
            .annotate(n=Count("id"))
        )
        counts.update((row["namespace"], row["n"]) for row in rows)
    return counts


def memories_live() -> int:
    """How many memories are not deleted: the trigger-kept tally where there is one, else a count."""
    if tallies.kept():
        return tallies.tally("memories.live")
    return Memory.objects.filter(deleted_at=None).count()
