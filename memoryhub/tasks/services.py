"""Tasks: created once per idempotency key, claimed by exactly one agent, completed idempotently,
back in the queue when a claim lapses, dead after `max_attempts`.

Claims and completions are compare-and-set UPDATEs guarded by the state they expect
(`filter(id=..., status="queued").update(...)`): a count of 1 means this caller won, 0 that someone
else changed the task first. That alone makes a double claim impossible on every database; on
PostgreSQL `SKIP LOCKED` also lets concurrent claimers pass over each other's candidates instead of
queueing on them, and on SQLite the IMMEDIATE transactions serialise claimers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from memoryhub.actors import SYSTEM, Actor
from memoryhub.agents.guard import agent_lock_active
from memoryhub.agents.models import ROLE_RE
from memoryhub.errors import AlreadyClaimed, Conflict, Forbidden, Invalid, NotFound, TooLarge
from memoryhub.events.services import NewEvent, events_append
from memoryhub.memories.services import memories_end_with_task
from memoryhub.memories.summaries import SUMMARIZE_KIND, check_summary_result, summary_store

from . import queries
from .models import Task, TaskStatus
from .selectors import task_event_seq, task_visible

MAX_CLAIM_TTL_SECONDS = 24 * 3600
DEFAULT_CLAIM_TTL_SECONDS = 60
MAX_ATTEMPTS_LIMIT = 100
MAX_KINDS = 50
# Lapsed claims one claim call turns back into queued tasks before choosing (the sweeper does the rest).
REQUEUE_BATCH = 20
_role_validator = RegexValidator(ROLE_RE)


@dataclass(frozen=True)
class TaskResult:
    task: Task
    seq: int | None
    created: bool = True  # task_create: False when the idempotency key found the existing task
    replayed: bool = False  # task_complete: True when this agent had already completed it


def _audience(task: Task, *agents: str | None) -> list[str]:
    """The task's role, its creator (if an agent) and its current or last claimer see its events."""
    audience = [f"role:{task.role}"]
    creator = task.created_by if ":" not in task.created_by else None  # humans are "human:<name>"
    for agent in (creator, task.claimed_by_id, *agents):
        if agent and f"agent:{agent}" not in audience:
            audience.append(f"agent:{agent}")
    return audience


def _state(task: Task) -> dict[str, Any]:
    return {
        "status": task.status,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "claimed_by": task.claimed_by_id,
        "claim_expires_at": task.claim_expires_at.isoformat() if task.claim_expires_at else None,
    }


def _event(
    task: Task,
    type: str,
    summary: str,
    *,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    actor: Actor | None = None,
    claimer: str | None = None,
) -> NewEvent:
    return NewEvent(
        type=type,
        namespace=f"task:{task.id}",
        resource=f"task:{task.id}",
        summary=summary,
        before=before,
        after=after,
        reason=reason,
        audience=_audience(task, claimer),
        actor=actor,
    )


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _check_size(value: Any, what: str) -> None:
    size, limit = _json_size(value), settings.MEMORYHUB_MAX_CONTENT_BYTES
    if size > limit:
        raise TooLarge(f"{what} is {size} bytes; tasks allow {limit}", size=size, limit=limit)


def _check_ttl(ttl_seconds: Any) -> int:
    if not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_CLAIM_TTL_SECONDS:
        raise Invalid(f"ttl_seconds must be between 1 and {MAX_CLAIM_TTL_SECONDS}", ttl_seconds=["out of range"])
    return ttl_seconds


def _require_agent(actor: Actor, doing: str) -> None:
    if not actor.is_agent:
        raise Forbidden(f"only agents {doing}; humans requeue or cancel tasks")


def _not_yours(task: Task, actor: Actor) -> AlreadyClaimed:
    if task.status == TaskStatus.CLAIMED and task.claimed_by_id == actor.id:
        message = f"your claim on task {task.id} lapsed; claim it again"
    elif task.status == TaskStatus.CLAIMED:
        message = f"task {task.id} is claimed by {task.claimed_by_id}"
    elif task.status == TaskStatus.QUEUED:
        message = f"task {task.id} is back in the queue (your claim lapsed or was freed); claim it again"
    else:
        message = f"task {task.id} is {task.status}"
    return AlreadyClaimed(message, task_id=task.id, status=task.status, claimed_by=task.claimed_by_id)


def _visible_task(actor: Actor, task_id: int, *, for_update: bool = False) -> Task:
    queryset = Task.objects.select_for_update() if for_update else Task.objects
    task = queryset.filter(id=task_id).first()
    if task is None or not task_visible(actor, task):
        raise NotFound(f"no task {task_id}")
    return task


# --- creating ---------------------------------------------------------------------------------------


def task_create(
    *,
    actor: Actor,
    role: str,
    kind: str,
    payload: Any = None,
    max_attempts: int = 3,
    priority: int = 0,
    idempotency_key: str = "",
) -> TaskResult:
    """Queue a task for agents of `role`. The same caller with the same `idempotency_key` gets the
    existing task back and no second row (a unique constraint decides a race between retries)."""
    try:
        _role_validator(role)
    except ValidationError:
        raise Invalid("role must be a role name (lowercase letters, digits, '.', '_', '-')", role=["invalid role"])
    if not isinstance(kind, str) or not 1 <= len(kind) <= 100:
        raise Invalid("kind must be 1-100 characters", kind=["invalid kind"])
    if not isinstance(max_attempts, int) or not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise Invalid(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}", max_attempts=["out of range"])
    if len(idempotency_key) > 255:
        raise Invalid("idempotency_key is longer than 255 characters", idempotency_key=["too long"])
    payload = {} if payload is None else payload
    _check_size(payload, "payload")

    def existing() -> TaskResult | None:
        if not idempotency_key:
            return None
        task = Task.objects.filter(created_by=actor.label, idempotency_key=idempotency_key).first()
        return TaskResult(task, task_event_seq(task.id, "task.created"), created=False) if task else None

    if found := existing():
        return found
    try:
        with transaction.atomic():
            task = Task.objects.create(
                role=role,
                kind=kind,
                payload=payload,
                max_attempts=max_attempts,
                priority=priority,
                created_by=actor.label,
                idempotency_key=idempotency_key,
            )
            created = _event(
                task,
                "task.created",
                f"{actor.label} queued {kind} task {task.id} for {role}",
                after={
                    "role": role,
                    "kind": kind,
                    "priority": priority,
                    "max_attempts": max_attempts,
                    "payload": payload,
                },
            )
            event = events_append(actor=actor, events=[created])[0]
    except IntegrityError:
        # A concurrent create with the same key committed first: answer with its task.
        if found := existing():
            return found
        raise
    return TaskResult(task, event.seq)


# --- claiming -----------------------------------------------------------------------------------------


def _requeue_lapsed(candidates: QuerySet[Task], now: datetime, limit: int) -> list[NewEvent]:
    """Lapsed claims among `candidates` go back to the queue (`task.requeued`), or to `dead` once they
    have used `max_attempts` (`task.dead`). Each is a compare-and-set on the claim it saw, so a
    claimer and the sweeper never both requeue one claim."""
    events = []
    lapsed = candidates.filter(status=TaskStatus.CLAIMED, claim_expires_at__lte=now).order_by("claim_expires_at", "id")
    for task in lapsed[:limit]:
        dead = task.attempts >= task.max_attempts
        won = Task.objects.filter(
            id=task.id, status=TaskStatus.CLAIMED, claimed_by_id=task.claimed_by_id, claim_expires_at__lte=now
        ).update(
            status=TaskStatus.DEAD if dead else TaskStatus.QUEUED,
            claimed_by=None,
            claimed_at=None,
            claim_expires_at=None,
            updated_at=now,
        )
        if not won:
            continue
        before, claimer = _state(task), task.claimed_by_id
        task.status = TaskStatus.DEAD if dead else TaskStatus.QUEUED
        task.claimed_by_id = task.claimed_at = task.claim_expires_at = None
        if dead:
            summary = (
                f"task {task.id} is dead: {claimer}'s claim lapsed on attempt {task.attempts} of {task.max_attempts}"
            )
        else:
            summary = (
                f"task {task.id} requeued: {claimer}'s claim lapsed (attempt {task.attempts} of {task.max_attempts})"
            )
        events.append(
            _event(
                task,
                "task.dead" if dead else "task.requeued",
                summary,
                before=before,
                after=_state(task),
                reason="claim expired",
                actor=SYSTEM,
                claimer=claimer,
            )
        )
    return events


def task_claim(
    *,
    actor: Actor,
    role: str | None = None,
    kinds: list[str] | None = None,
    ttl_seconds: int = DEFAULT_CLAIM_TTL_SECONDS,
    now: datetime | None = None,
) -> TaskResult | None:
    """The next queued task of the caller's role (highest priority, then oldest), claimed for
    `ttl_seconds`; None when there is none. Never the same task to two agents."""
    _require_agent(actor, "claim tasks")
    role = role or actor.role
    if role != actor.role:
        raise Forbidden(f"{actor.id} has role {actor.role!r}: it claims only {actor.role!r} tasks", role=role)
    if kinds is not None and (
        not isinstance(kinds, list) or len(kinds) > MAX_KINDS or not all(isinstance(k, str) and k for k in kinds)
    ):
        raise Invalid(f"kinds must be a list of up to {MAX_KINDS} task kinds", kinds=["invalid"])
    ttl = timedelta(seconds=_check_ttl(ttl_seconds))
    with transaction.atomic():
        at = now or timezone.now()
        agent_lock_active(actor=actor)
        # Lapsed claims are the sweeper's job, but one is claimable at once: scan for them only when
        # there are some.
        lapsed = queries.lapsed_claims_exist(role=role, at=at)
        events = _requeue_lapsed(Task.objects.filter(role=role), at, REQUEUE_BATCH) if lapsed else []
        task = queries.claim_next(agent_id=actor.id, role=role, kinds=kinds, at=at, ttl=ttl)
        if task is not None:
            events.append(
                _event(
                    task,
                    "task.claimed",
                    f"{actor.label} claimed {task.kind} task {task.id} (attempt {task.attempts} of "
                    f"{task.max_attempts})",
                    after=_state(task),
                )
            )
        if events:
            appended = events_append(actor=actor, events=events)
    return TaskResult(task, appended[-1].seq) if task is not None else None


def task_heartbeat(*, actor: Actor, task_id: int, ttl_seconds: int | None = None, now: datetime | None = None) -> Task:
    """Extend the caller's claim. Liveness, not a state change: no event."""
    _require_agent(actor, "heartbeat tasks")
    now = now or timezone.now()
    ttl = _check_ttl(ttl_seconds if ttl_seconds is not None else DEFAULT_CLAIM_TTL_SECONDS)
    task = queries.claim_extend(task_id=task_id, agent_id=actor.id, until=now + timedelta(seconds=ttl), now=now)
    if task is None:
        raise _not_yours(_visible_task(actor, task_id), actor)
    return task


# --- finishing ------------------------------------------------------------------------------------------


def _complete_claim(*, actor: Actor, task_id: int, result: Any, now: datetime) -> tuple[Task, int] | None:
    """Compare-and-set on the caller's claim: the task completed as written and how many of its
    working memories ended with it; None if the caller does not hold the claim (the caller then
    tells a replay from a refusal)."""
    task = queries.claim_complete(task_id=task_id, agent_id=actor.id, completed_by=actor.label, result=result, now=now)
    if task is None:
        return None
    return task, memories_end_with_task(task_id=task.id, now=now)


def task_complete(*, actor: Actor, task_id: int, result: Any = None) -> TaskResult:
    """Complete the caller's claimed task. Completing again returns the first result and records
    nothing; anyone else gets 409 already_claimed."""
    _require_agent(actor, "complete tasks")
    _check_size(result, "result")
    with transaction.atomic():
        now = timezone.now()
        if completed := _complete_claim(actor=actor, task_id=task_id, result=result, now=now):
            task, expired = completed
            if task.kind == SUMMARIZE_KIND:  # the hub stores the summary and archives the episodes
                summary_store(actor=actor, payload=task.payload, summary=check_summary_result(result), task_id=task.id)
            event = events_append(
                actor=actor,
                events=[
                    _event(
                        task,
                        "task.completed",
                        f"{actor.label} completed {task.kind} task {task.id}",
                        after={**_state(task), "result": result, "memories_expired": expired},
                    )
                ],
            )[0]
            return TaskResult(task, event.seq)
    task = _visible_task(actor, task_id)
    if task.status == TaskStatus.COMPLETED and task.completed_by == actor.label:
        return TaskResult(task, task_event_seq(task.id, "task.completed"), replayed=True)
    raise _not_yours(task, actor)


def task_fail(*, actor: Actor, task_id: int, error: str = "", retry: bool = False) -> TaskResult:
    """The claimer gives up: back to the queue if `retry` and attempts remain, `dead` if `retry` but
    none remain, otherwise `failed`."""
    _require_agent(actor, "fail tasks")
    with transaction.atomic():
        task = _visible_task(actor, task_id, for_update=True)
        now = timezone.now()
        lapsed = task.claim_expires_at is not None and task.claim_expires_at <= now
        if task.status != TaskStatus.CLAIMED or task.claimed_by_id != actor.id or lapsed:
            raise _not_yours(task, actor)
        before = _state(task)
        if retry and task.attempts < task.max_attempts:
            task.status = TaskStatus.QUEUED
        elif retry:
            task.status = TaskStatus.DEAD
        else:
            task.status = TaskStatus.FAILED
        task.error = error
        task.claimed_by = None
        task.claimed_at = task.claim_expires_at = None
        task.updated_at = now
        task.save()
        events = [
            _event(
                task,
                "task.failed",
                f"{actor.label} failed task {task.id}: {error}"[:300]
                + (" (requeued)" if task.status == TaskStatus.QUEUED else ""),
                before=before,
                after={**_state(task), "error": error, "retry": retry},
                reason=error,
                claimer=actor.id,
            )
        ]
        if task.status == TaskStatus.DEAD:
            events.append(
                _event(
                    task,
                    "task.dead",
                    f"task {task.id} is dead after {task.attempts} of {task.max_attempts} attempts",
                    after=_state(task),
                    reason=error,
                    claimer=actor.id,
                )
            )
        seq = events_append(actor=actor, events=events)[-1].seq
    return TaskResult(task, seq)


# --- humans -------------------------------------------------------------------------------------------


def task_requeue(*, actor: Actor, task_id: int, reason: str = "") -> TaskResult:
    """A human puts a task back in the queue: a stuck claim is freed (its attempt still counts), a
    failed, dead or cancelled task starts over with fresh attempts."""
    if not actor.is_human:
        raise Forbidden("only humans may requeue tasks")
    with transaction.atomic():
        task = _visible_task(actor, task_id, for_update=True)
        if task.status in (TaskStatus.QUEUED, TaskStatus.COMPLETED):
            raise Conflict(f"task {task.id} is {task.status}", status=task.status)
        before, claimer = _state(task), task.claimed_by_id
        if task.status != TaskStatus.CLAIMED:
            task.attempts = 0
        task.status = TaskStatus.QUEUED
        task.claimed_by = None
        task.claimed_at = task.claim_expires_at = None
        task.save()
        event = events_append(
            actor=actor,
            events=[
                _event(
                    task,
                    "task.requeued",
                    f"{actor.label} requeued task {task.id}",
                    before=before,
                    after=_state(task),
                    reason=reason,
                    claimer=claimer,
                )
            ],
        )[0]
    return TaskResult(task, event.seq)


def task_cancel(*, actor: Actor, task_id: int, reason: str = "") -> TaskResult:
    if not actor.is_human:
        raise Forbidden("only humans may cancel tasks")
    with transaction.atomic():
        task = _visible_task(actor, task_id, for_update=True)
        if task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            raise Conflict(f"task {task.id} is already {task.status}", status=task.status)
        before, claimer = _state(task), task.claimed_by_id
        task.status = TaskStatus.CANCELLED
        task.claimed_by = None
        task.claimed_at = task.claim_expires_at = None
        task.save()
        event = events_append(
            actor=actor,
            events=[
                _event(
                    task,
                    "task.cancelled",
                    f"{actor.label} cancelled task {task.id}",
                    before=before,
                    after=_state(task),
                    reason=reason,
                    claimer=claimer,
                )
            ],
        )[0]
    return TaskResult(task, event.seq)


def tasks_requeue_claims(*, agent_id: str, reason: str) -> list[NewEvent]:
    """The kill switch's part in tasks: every claim the agent holds goes back to the queue. Runs in
    the caller's transaction (agent_set_status) and returns the events for it to append."""
    if not connection.in_atomic_block:
        raise RuntimeError("tasks_requeue_claims runs inside the kill switch's transaction")
    events = []
    for task in (
        Task.objects.select_for_update().filter(status=TaskStatus.CLAIMED, claimed_by_id=agent_id).order_by("id")
    ):
        before = _state(task)
        task.status = TaskStatus.QUEUED
        task.claimed_by = None
        task.claimed_at = task.claim_expires_at = None
        task.save()
        events.append(
            _event(
                task,
                "task.requeued",
                f"task {task.id} requeued: {agent_id} was suspended",
                before=before,
                after=_state(task),
                reason=reason,
                claimer=agent_id,
            )
        )
    return events


def claims_requeue_expired(*, now: datetime | None = None, limit: int = 500) -> int:
    """The sweeper: lapsed claims back to the queue (or dead), one small transaction each."""
    now = now or timezone.now()
    due = (
        Task.objects.filter(status=TaskStatus.CLAIMED, claim_expires_at__lte=now)
        .order_by("claim_expires_at", "id")
        .values_list("id", flat=True)
    )
    done = 0
    for task_id in list(due[:limit]):
        with transaction.atomic():
            events = _requeue_lapsed(Task.objects.filter(id=task_id), now, 1)
            if events:
                events_append(actor=SYSTEM, events=events)
                done += 1
    return done
