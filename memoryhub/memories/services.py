"""Writing memories. Each write: policy check, version/fencing/ownership checks against the row (locked
first, or for a conditional write updated only if unchanged), the new version and its event, all in
one transaction; the event is published after commit."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from memoryhub import times
from memoryhub.actors import SYSTEM, Actor
from memoryhub.errors import (
    FieldNotOwned,
    Forbidden,
    Held,
    Invalid,
    NotFound,
    PreconditionRequired,
    StaleFencingToken,
    TooLarge,
    VersionConflict,
)
from memoryhub.events.models import Event
from memoryhub.events.services import NewEvent, event_append, event_record, events_append
from memoryhub.locks.holds import held, hold_covering
from memoryhub.locks.selectors import current_exclusive_lease
from memoryhub.times import iso
from policies.decide import (
    Decision,
    changed_fields,
    decide_read,
    decide_write,
    field_owners,
    field_violations,
    namespace_rule,
)
from policies.selectors import policies_for, policy_set

from .content import check_names, content_size, merge_patch
from .lifecycle import is_stale, is_valid, stale_after, stale_since, why_invalid
from .models import Memory, MemoryKind
from .queries import fetch_memory, memories_expire_namespace_tree, memory_save_existing
from .selectors import memory_to_dict, stale_memories, version_content

MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
MAX_SUPERSEDES = 20
DELETED = object()  # what a delete "writes"
KEEP = object()  # a write that says nothing of valid_until keeps it
TASK_NAMESPACE_RE = re.compile(r"\Atask:[0-9]+(:|\Z)")


@dataclass(frozen=True)
class WriteResult:
    memory: Memory
    event: Event
    readable: bool = True  # may the writer read the namespace? If not, it is shown no content


def _live(memory: Memory | None, now: datetime | None = None) -> Memory | None:
    """The memory as readers see it: None when absent, deleted or expired."""
    if memory is None or memory.deleted_at is not None:
        return None
    return memory if memory.expires_at is None or memory.expires_at > (now or timezone.now()) else None


def _check_fencing(*, actor: Actor, memory: Memory | None, resource: str, token: int | None) -> None:
    """A `locked` namespace: the writer must present the token of its current exclusive lock on
    `memory:<resource>`, and never one older than a token already used or already issued."""
    lock_name = f"memory:{resource}"
    if token is None:
        raise Held(
            f"{resource} is in a locked namespace: hold an exclusive lock on {lock_name} and send X-Fencing-Token",
            lock=lock_name,
        )
    lease = current_exclusive_lease(lock_name)
    newest = max(memory.fencing_token if memory else 0, lease.fencing_token if lease else 0)
    if token < newest:
        raise StaleFencingToken(
            f"fencing token {token} is older than {newest}: your lock on {lock_name} has lapsed",
            presented=token,
            current=newest,
        )
    if lease is None or lease.fencing_token != token or lease.agent_id != actor.id:
        raise Held(f"no current lock on {lock_name} with fencing token {token}", lock=lock_name)


def _record_conflict(*, actor: Actor, namespace: str, key: str, error: Exception) -> None:
    event_record(
        actor=actor,
        type="conflict.rejected",
        namespace=namespace,
        resource=f"{namespace}/{key}",
        summary=f"{actor.label}'s write to {namespace}/{key} refused: {getattr(error, 'code', '')}",
        after={"code": getattr(error, "code", ""), "details": getattr(error, "details", {})},
    )


def _write(
    *,
    actor: Actor,
    namespace: str,
    key: str,
    op: str,
    compute: Callable[[Memory | None], Any],
    if_match: int | None = None,
    if_none_match: bool = False,
    fencing_token: int | None = None,
    kind: str | None = None,
    ttl_seconds: int | None = None,
    reason: str = "",
    named_fields: set[str] | None = None,
    valid_until: datetime | None | object = KEEP,
    supersedes: Sequence[tuple[str, str]] = (),
    derived_from: list[str] | None = None,
) -> WriteResult:
    check_names(namespace, key)
    if kind is not None and kind not in MemoryKind.values:
        raise Invalid(f"kind must be one of {MemoryKind.values}", kind=["invalid choice"])
    if ttl_seconds is not None and not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise Invalid("ttl_seconds must be between 1 and 10 years", ttl_seconds=["out of range"])
    if isinstance(valid_until, datetime) and valid_until <= times.now():
        raise Invalid(
            "valid_until must be in the future (to end a fact now, supersede it or delete it)",
            valid_until=["not in the future"],
        )
    supersedes = _check_supersedes(namespace, key, supersedes)
    policies = policies_for(actor)
    decision: Decision = decide_write(policies, actor, namespace)
    if not decision.allowed:
        raise Forbidden(decision.reason, **decision.details())
    # A namespace may be writable but not readable (a drop box): refusals then tell such a writer
    # the version and metadata it needs to write, never the content (see memory_to_dict).
    readable = decide_read(policies, actor, namespace).allowed
    resource = f"{namespace}/{key}"
    for target_namespace, _ in supersedes:
        target = decide_write(policies, actor, target_namespace)
        if not target.allowed:
            raise Forbidden(f"supersedes: {target.reason}", **target.details())
    asked = [resource, *(f"{ns}/{k}" for ns, k in supersedes)]
    if actor.is_agent and (hold := hold_covering(actor=actor, resources=asked)):
        raise held(actor=actor, hold=hold, asked=asked)
    conditional = if_match is not None or if_none_match
    for attempt in (1, 2):
        try:
            read = (
                _read_unless_stale(
                    actor, namespace, key, op, if_match=if_match, if_none_match=if_none_match, readable=readable
                )
                if conditional
                else None
            )
            with transaction.atomic():
                try:
                    return _write_in_transaction(
                        read=read,
                        actor=actor,
                        namespace=namespace,
                        key=key,
                        op=op,
                        compute=compute,
                        if_match=if_match,
                        if_none_match=if_none_match,
                        fencing_token=fencing_token,
                        kind=kind,
                        ttl_seconds=ttl_seconds,
                        reason=reason,
                        policies=policies,
                        decision=decision,
                        readable=readable,
                        named_fields=named_fields,
                        valid_until=valid_until,
                        supersedes=supersedes,
                        derived_from=derived_from,
                    )
                except (VersionConflict, StaleFencingToken) as error:
                    # Refused before anything was written (the checks come first, and a conditional
                    # UPDATE that found the row changed changed nothing): the record of the refusal
                    # commits in the same transaction.
                    _record_conflict(actor=actor, namespace=namespace, key=key, error=error)
                    refused = error
            raise refused
        except IntegrityError:
            # Two creators raced on an absent (namespace, key): the loser goes again as an update of
            # the winner's row, which it now sees (and must match like any update).
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _read_unless_stale(
    actor: Actor, namespace: str, key: str, op: str, *, if_match: int | None, if_none_match: bool, readable: bool
) -> Memory | None:
    """A conditional write's unlocked read of the row, before its transaction: a write already stale
    is refused (its refusal recorded in a transaction of its own) without opening one."""
    memory = fetch_memory(namespace, key)
    live = _live(memory)
    if live is not None or op == "put":  # else the transaction answers 404
        try:
            _check_preconditions(
                namespace, key, live, if_match=if_match, if_none_match=if_none_match, readable=readable
            )
        except VersionConflict as error:
            _record_conflict(actor=actor, namespace=namespace, key=key, error=error)
            raise
    return memory


def _check_preconditions(
    namespace: str,
    key: str,
    live: Memory | None,
    *,
    if_match: int | None,
    if_none_match: bool,
    readable: bool = True,
) -> None:
    """412 when `If-None-Match: *` meets a live memory, or `If-Match` is not the live version (`live`:
    the memory as readers see it, None when absent, deleted or expired). `current` in the refusal,
    and so in its conflict.rejected record, holds the content only for a caller that may read it."""
    current = memory_to_dict(live, readable=readable) if live is not None else None
    resource = f"{namespace}/{key}"
    if if_none_match and live is not None:
        raise VersionConflict(f"{resource} already exists", current=current)
    if if_match is not None and (live is None or live.version != if_match):
        raise VersionConflict(
            f"{resource} is at version {live.version if live is not None else 'none'}, not {if_match}",
            current=current,
        )


def _fields_touched_blind(
    policies, namespace: str, live: Memory | None, new_content: Any, named_fields: set[str] | None
) -> set[str]:
    """The fields a write by a caller that may not read the namespace counts as changing, decided
    without looking at the content it may not see: which owned fields differ would answer whether a
    guessed value is right. A patch touches the fields it names; a new memory the fields it has; a
    replace or delete of a live one every field (the caller cannot keep an owned value it cannot read)."""
    if named_fields is not None:
        return named_fields
    if live is None:
        return set(new_content) if isinstance(new_content, dict) else set()
    return set(field_owners(policies, namespace))


def _write_in_transaction(
    *,
    read,
    actor,
    namespace,
    key,
    op,
    compute,
    if_match,
    if_none_match,
    fencing_token,
    kind,
    ttl_seconds,
    reason,
    policies,
    decision,
    readable,
    named_fields,
    valid_until,
    supersedes,
    derived_from,
) -> WriteResult:
    """The write, in `_write`'s transaction: every refusal is raised before anything is written."""
    resource = f"{namespace}/{key}"
    # A conditional write (If-Match, If-None-Match) has read the row without locking it (`read`, by
    # _read_unless_stale) and updates it only if it is unchanged since, as optimistic locking does in
    # SQL: the row is locked from the UPDATE to the commit only, and a write gone stale meanwhile
    # waits for nobody but the writer before it. Any other write locks the row first, so it sees the
    # latest version.
    conditional = if_match is not None or if_none_match
    memory = read if conditional else fetch_memory(namespace, key, for_update=True)
    read_at = (memory.version, memory.expires_at) if conditional and memory is not None else None
    now = timezone.now()
    live_memory = _live(memory, now)
    live = live_memory is not None
    if live_memory is None and op != "put":
        raise NotFound(f"no memory {resource}")
    _check_preconditions(namespace, key, live_memory, if_match=if_match, if_none_match=if_none_match, readable=readable)
    mode = decision.write_mode
    if mode == "optimistic" and live_memory is not None and if_match is None and op != "revert":
        raise PreconditionRequired(current_version=live_memory.version)
    # Humans and the system (a summary, written create-only) outrank the lock; agents need its token.
    if mode == "locked" and actor.is_agent:
        _check_fencing(actor=actor, memory=memory, resource=resource, token=fencing_token)

    before = live_memory.content if live_memory is not None else None
    new_content = compute(live_memory)
    deleting = new_content is DELETED
    if not deleting:
        if not isinstance(new_content, dict):
            raise Invalid("content must be a JSON object", content=["must be an object"])
        size = content_size(new_content)
        limit = (decision.rule.max_content_bytes if decision.rule else None) or settings.MEMORYHUB_MAX_CONTENT_BYTES
        if size > limit:
            if not readable and op == "patch":  # the merged size would tell how much others wrote
                raise TooLarge(f"the patched content would be over the {limit} bytes {namespace} allows", limit=limit)
            raise TooLarge(f"content is {size} bytes; {namespace} allows {limit}", size=size, limit=limit)
    violations = field_violations(
        policies,
        actor,
        namespace,
        changed_fields(before or {}, {} if deleting else new_content)
        if readable
        else _fields_touched_blind(policies, namespace, live_memory, new_content, named_fields),
    )
    if violations:
        owners = "; ".join(f"{name!r} is owned by {', '.join(roles)}" for name, roles in violations.items())
        raise FieldNotOwned(f"{owners}: send the owner a 'handoff' context entry instead", fields=violations)

    if memory is None:
        memory = Memory(namespace=namespace, key=key, version=0, created_by=actor.label, created_at=now)
    elif not live:  # writing over a tombstone starts the memory again, its versions still counting
        memory.created_by, memory.created_at, memory.expires_at = actor.label, now, None
    memory.version += 1
    memory.updated_by = actor.label
    memory.updated_at = now
    memory.reason = reason
    if fencing_token is not None and mode == "locked":
        memory.fencing_token = max(memory.fencing_token, fencing_token)
    if kind:
        memory.kind = kind
    if deleting:
        memory.content, memory.size_bytes, memory.deleted_at = None, 0, now
    else:
        memory.content, memory.size_bytes, memory.deleted_at = new_content, size, None
        ttl = ttl_seconds or (decision.rule.default_ttl_seconds if decision.rule and not live else None)
        if ttl:
            memory.expires_at = now + timedelta(seconds=ttl)
        _check_working_scoped(memory)
        # A write is a new assertion: verified by its writer, valid again (not superseded, archived).
        _verify(memory, actor, times.now())
        memory.superseded_by, memory.superseded_at, memory.archived_at = "", None, None
        if valid_until is not KEEP:
            memory.valid_until = valid_until
        if derived_from is not None:
            memory.derived_from = derived_from
    if memory.pk is None:
        with transaction.atomic():  # a savepoint, so a racing creator's IntegrityError is recoverable
            memory.save(force_insert=True)
    elif not memory_save_existing(memory, unchanged_since=read_at):
        # Written or expired by someone else since it was read: the precondition decides again.
        fresh = fetch_memory(namespace, key)
        _check_preconditions(
            namespace, key, _live(fresh, now), if_match=if_match, if_none_match=if_none_match, readable=readable
        )
        raise VersionConflict(f"{resource} changed while it was being written", current=None)
    event_type = {
        "delete": "memory.deleted",
        "revert": "memory.reverted",
    }.get(op, "memory.updated" if live else "memory.created")
    superseding = f", superseding {', '.join(f'{ns}/{k}' for ns, k in supersedes)}" if supersedes else ""
    # The superseded facts' events in the write's batch: one moment of the log (`at`), so an `as_of`
    # read never sees the new fact without the old one superseded.
    event, *_ = events_append(
        actor=actor,
        events=[
            NewEvent(
                type=event_type,
                namespace=namespace,
                resource=resource,
                version=memory.version,
                summary=f"{actor.label} {event_type.split('.')[1]} {resource} v{memory.version}{superseding}",
                before=before,
                after=None if deleting else new_content,
                reason=reason,
            ),
            *(_supersede(namespace=ns, key=k, by=resource, now=now, reason=reason) for ns, k in supersedes),
        ],
    )
    return WriteResult(memory, event, readable)


def _check_working_scoped(memory: Memory) -> None:
    """Working memory never accumulates: it belongs to a task (namespace `task:<id>` and below, which
    the task's completion ends) or it expires (ttl_seconds, or the namespace's default_ttl_seconds)."""
    if memory.kind != MemoryKind.WORKING or memory.expires_at is not None or TASK_NAMESPACE_RE.match(memory.namespace):
        return
    raise Invalid(
        f"working memory must be scoped to a task or expire: write it under task:<task id> (it ends with the "
        f"task), or send ttl_seconds, or use kind episodic or semantic for {memory.namespace}/{memory.key}",
        kind=["working memory needs a task namespace (task:<id>) or ttl_seconds"],
    )


def _verify(memory: Memory, actor: Actor, now: datetime) -> None:
    memory.verified_at, memory.verified_by, memory.stale_announced_at = now, actor.label, None


def _check_supersedes(namespace: str, key: str, supersedes: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if len(supersedes) > MAX_SUPERSEDES:
        raise Invalid(f"supersedes names more than {MAX_SUPERSEDES} memories", supersedes=["too many"])
    checked: list[tuple[str, str]] = []
    for target_namespace, target_key in supersedes:
        check_names(target_namespace, target_key)
        if (target_namespace, target_key) == (namespace, key):
            raise Invalid("a memory cannot supersede itself", supersedes=[f"{namespace}/{key} is this memory"])
        if (target_namespace, target_key) not in checked:
            checked.append((target_namespace, target_key))
    return checked


def _supersede(*, namespace: str, key: str, by: str, now: datetime, reason: str) -> NewEvent:
    """In the superseding write's transaction: the old fact is kept, no longer valid (no new version:
    its content is unchanged). Returns its `memory.superseded` event, naming what replaced it."""
    memory = _live(fetch_memory(namespace, key, for_update=True), now)
    valid_now = times.now()
    if memory is None or not is_valid(memory, valid_now):
        why = "no live memory" if memory is None else f"already {why_invalid(memory, valid_now)}:"
        raise Invalid(f"supersedes: {why} {namespace}/{key}", supersedes=[f"{namespace}/{key}: {why}"])
    memory.superseded_by, memory.superseded_at = by, valid_now
    memory_save_existing(memory)
    return NewEvent(
        type="memory.superseded",
        namespace=namespace,
        resource=memory.resource,
        version=memory.version,
        summary=f"{memory.resource} v{memory.version} superseded by {by}",
        after={"superseded_by": by},
        reason=reason,
    )


def memory_verify(*, actor: Actor, namespace: str, key: str, reason: str = "") -> WriteResult:
    """Re-confirm a memory without changing it: verified_at/verified_by move to now and the caller, a
    `memory.verified` event, no new version. Who may write the namespace may verify it."""
    check_names(namespace, key)
    policies = policies_for(actor)
    decision = decide_write(policies, actor, namespace)
    if not decision.allowed:
        raise Forbidden(decision.reason, **decision.details())
    resource = f"{namespace}/{key}"
    if actor.is_agent and (hold := hold_covering(actor=actor, resources=[resource])):
        raise held(actor=actor, hold=hold, asked=[resource])
    with transaction.atomic():
        memory = _live(fetch_memory(namespace, key, for_update=True))
        now = times.now()
        if memory is None or not is_valid(memory, now):
            raise NotFound(f"no memory {resource}")
        _verify(memory, actor, now)
        memory_save_existing(memory)
        event = event_append(
            actor=actor,
            type="memory.verified",
            namespace=namespace,
            resource=resource,
            version=memory.version,
            summary=f"{actor.label} verified {resource} v{memory.version}",
            after={"verified_at": iso(now), "verified_by": actor.label},
            reason=reason,
        )
    return WriteResult(memory, event, decide_read(policies, actor, namespace).allowed)


def memory_put(
    *,
    actor: Actor,
    namespace: str,
    key: str,
    content: Any,
    kind: str | None = None,
    ttl_seconds: int | None = None,
    reason: str = "",
    if_match: int | None = None,
    if_none_match: bool = False,
    fencing_token: int | None = None,
    valid_until: datetime | None = None,
    supersedes: Sequence[tuple[str, str]] = (),
    derived_from: list[str] | None = None,
) -> WriteResult:
    """Write the whole content. `valid_until` (future) ends the fact's validity then; `supersedes`
    names memories this one replaces: they stay, out of default reads, with `superseded_by` set."""
    return _write(
        actor=actor,
        namespace=namespace,
        key=key,
        op="put",
        compute=lambda _: content,
        if_match=if_match,
        if_none_match=if_none_match,
        fencing_token=fencing_token,
        kind=kind,
        ttl_seconds=ttl_seconds,
        reason=reason,
        valid_until=valid_until,
        supersedes=supersedes,
        derived_from=derived_from,
    )


def memory_patch(
    *,
    actor: Actor,
    namespace: str,
    key: str,
    patch: Any,
    reason: str = "",
    if_match: int | None = None,
    fencing_token: int | None = None,
) -> WriteResult:
    """Apply a JSON merge patch (RFC 7396) to the content; field ownership is checked per changed field."""

    def patched(memory: Memory | None) -> Any:
        assert memory is not None  # _write_in_transaction raises NotFound before compute unless the memory is live
        return merge_patch(memory.content, patch)

    return _write(
        actor=actor,
        namespace=namespace,
        key=key,
        op="patch",
        compute=patched,
        if_match=if_match,
        fencing_token=fencing_token,
        reason=reason,
        named_fields=set(patch) if isinstance(patch, dict) else None,
    )


def memory_delete(
    *,
    actor: Actor,
    namespace: str,
    key: str,
    reason: str = "",
    if_match: int | None = None,
    fencing_token: int | None = None,
) -> WriteResult:
    """Delete the memory (a tombstone version); its history stays in the log."""
    return _write(
        actor=actor,
        namespace=namespace,
        key=key,
        op="delete",
        compute=lambda _: DELETED,
        if_match=if_match,
        fencing_token=fencing_token,
        reason=reason,
    )


def memory_revert(
    *,
    actor: Actor,
    namespace: str,
    key: str,
    version: int,
    reason: str = "",
    if_match: int | None = None,
    fencing_token: int | None = None,
) -> WriteResult:
    """A new version equal to an old one (a compensating change; nothing is erased)."""
    check_names(namespace, key)
    if not decide_read(policies_for(actor), actor, namespace).allowed:
        raise NotFound(f"no memory {namespace}/{key}")
    old = version_content(namespace=namespace, key=key, version=version)
    if old is None:
        raise NotFound(f"{namespace}/{key} has no version {version} with content")
    return _write(
        actor=actor,
        namespace=namespace,
        key=key,
        op="revert",
        compute=lambda _: old,
        if_match=if_match,
        fencing_token=fencing_token,
        reason=reason or f"revert to version {version}",
    )


def memories_end_with_task(*, task_id: int, now: datetime) -> int:
    """A task's working memory (namespace `task:<id>` and below) ends with it: called by the task's
    completion, in its transaction. Reads treat it as gone at once; the expiry sweeper records
    `memory.expired` for each (expires_at moves, which conditional writes compare, so a write racing
    the completion is refused rather than reviving it). Returns how many expired."""
    return memories_expire_namespace_tree(namespace=f"task:{int(task_id)}", at=now)


def _tombstone_where(*, conditions: Q, now, reason: str, limit: int) -> int:
    """Turn matching live memories into tombstones, each with a `memory.expired` event (actor SYSTEM)."""
    done = 0
    for memory_id in Memory.objects.filter(conditions, deleted_at=None).values_list("id", flat=True)[:limit]:
        with transaction.atomic():
            # Re-checked under the row lock: it may have been written again meanwhile.
            memory = Memory.objects.select_for_update().filter(conditions, id=memory_id, deleted_at=None).first()
            if memory is None:
                continue
            before = memory.content
            memory.version += 1
            memory.content, memory.size_bytes, memory.deleted_at = None, 0, now
            memory.updated_by, memory.updated_at, memory.reason = SYSTEM.label, now, reason
            memory.save()
            event_append(
                actor=SYSTEM,
                type="memory.expired",
                namespace=memory.namespace,
                resource=memory.resource,
                version=memory.version,
                summary=f"{memory.resource} {reason}",
                before=before,
                reason=reason,
            )
            done += 1
    return done


def memories_expire(*, now=None, limit: int = 500) -> int:
    """Memories past their expiry become tombstones with a `memory.expired` event."""
    now = now or timezone.now()
    return _tombstone_where(conditions=Q(expires_at__lte=now), now=now, reason="expired", limit=limit)


def episodic_prune(*, now=None, limit: int = 500) -> int:
    """Episodic memories not written for MEMORYHUB_EPISODIC_RETENTION_DAYS are pruned the same way."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MEMORYHUB_EPISODIC_RETENTION_DAYS)
    return _tombstone_where(
        conditions=Q(kind=MemoryKind.EPISODIC, updated_at__lt=cutoff),
        now=now,
        reason="pruned (episodic retention)",
        limit=limit,
    )


def _writer_roles(policies, rule, namespace: str) -> list[str]:
    """The roles a policy names as writers that may read `namespace` (a write-only role must not
    learn what is in it): `*` and `self` name no one to tell."""
    return [
        role
        for role in (rule.writers if rule else ())
        if role not in ("*", "self") and decide_read(policies, Actor(kind="agent", id="", role=role), namespace).allowed
    ]


def stale_announce(*, now: datetime | None = None, limit: int = 500) -> int:
    """Each semantic memory gone stale is announced once per staleness period: a `memory.stale` event
    and a `stale` context entry to each writer role of its namespace (an agent re-checks the fact and
    verifies it, or rewrites it). Returns how many were announced."""
    from contexts.services import context_send

    now = now or times.now()
    policies = policy_set()
    done = 0
    for candidate in stale_memories(policies=policies, now=now, limit=limit, unannounced=True):
        rule = namespace_rule(policies, candidate.namespace)
        period = stale_after(rule)
        with transaction.atomic():
            # Re-checked under the row lock: verified, rewritten or announced by another sweeper meanwhile.
            memory = fetch_memory(candidate.namespace, candidate.key, for_update=True)
            if (
                period is None
                or memory is None
                or _live(memory) is None
                or not is_valid(memory, now)
                or not is_stale(memory, rule, now)
                or (memory.stale_announced_at is not None and memory.stale_announced_at > now - period)
            ):
                continue
            memory.stale_announced_at = now
            memory_save_existing(memory)
            about = {
                "namespace": memory.namespace,
                "key": memory.key,
                "version": memory.version,
                "verified_at": iso(memory.verified_at),
                "verified_by": memory.verified_by,
                "stale_since": iso(stale_since(memory, rule)),
            }
            roles = _writer_roles(policies, rule, memory.namespace)
            event_append(
                actor=SYSTEM,
                type="memory.stale",
                namespace=memory.namespace,
                resource=memory.resource,
                version=memory.version,
                summary=f"{memory.resource} v{memory.version} is stale (verified {about['verified_at']})",
                after={**about, "announced_to": roles},
            )
            for role in roles:
                try:
                    with transaction.atomic():
                        context_send(
                            actor=SYSTEM,
                            to_role=role,
                            context_type="stale",
                            subject=f"stale: {memory.resource}"[:600],
                            content={
                                **about,
                                "action": f"re-check it, then POST memories/{memory.namespace}/{memory.key}/verify/ "
                                "or write the corrected fact",
                            },
                        )
                except Invalid:  # no agent has the role (yet): the event still records the staleness
                    continue
            done += 1
    return done
