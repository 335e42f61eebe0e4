"""Reading tasks. Agents see the tasks of their role, the ones they created and the ones they claim;
humans see all."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from memoryhub import cursors
from memoryhub.actors import Actor
from memoryhub.events.models import Event
from memoryhub.tallies import selectors as tallies
from memoryhub.times import iso

from .models import Task, TaskStatus


def task_visible(actor: Actor, task: Task) -> bool:
    if actor.kind != "agent":
        return True
    return task.role == actor.role or task.created_by == actor.id or task.claimed_by_id == actor.id


def task_to_dict(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "role": task.role,
        "kind": task.kind,
        "payload": task.payload,
        "status": task.status,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "claimed_by": task.claimed_by_id,
        "claimed_at": iso(task.claimed_at),
        "claim_expires_at": iso(task.claim_expires_at),
        "result": task.result,
        "error": task.error,
        "created_by": task.created_by,
        "idempotency_key": task.idempotency_key,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "completed_at": iso(task.completed_at),
        "completed_by": task.completed_by,
    }


def task_event_seq(task_id: int, type: str) -> int | None:
    """The seq of the task's latest event of this type (what an idempotent repeat answers with)."""
    return (
        Event.objects.filter(resource=f"task:{task_id}", type=type)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )


def task_get(*, actor: Actor, task_id: int) -> Task | None:
    task = Task.objects.filter(id=task_id).first()
    return task if task is not None and task_visible(actor, task) else None


MAX_OFFSET = 1000  # `offset` still works for the first pages; deeper ones need `cursor`


def tasks_list(
    *,
    actor: Actor,
    status: str | None = None,
    role: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tasks the caller may see, oldest first, and the cursor of the next (None on the last)."""
    tasks = Task.objects.all()
    if actor.kind == "agent":
        tasks = tasks.filter(Q(role=actor.role) | Q(created_by=actor.id) | Q(claimed_by_id=actor.id))
    if status:
        tasks = tasks.filter(status=status)
    if role:
        tasks = tasks.filter(role=role)
    if kind:
        tasks = tasks.filter(kind=kind)
    rows, following = cursors.id_page(
        tasks,
        kind="tasks",
        filters={"status": status, "role": role, "kind": kind},
        cursor=cursor,
        limit=limit,
        offset=offset,
    )
    return [task_to_dict(task) for task in rows], following


def tasks_by_status() -> dict[str, int]:
    """How many tasks are in each status (every status, 0 for none): the trigger-kept tallies where
    there are some, else a count."""
    if tallies.kept():
        counts = tallies.tallies("tasks")
    else:
        counts = dict(Task.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in TaskStatus.values}
