"""/tasks/: the queue; requeue and cancel as a human, each an event with the human and reason."""

from memoryhub.tasks.models import Task
from memoryhub.tasks.services import task_claim, task_complete, task_create

from .conftest import last_event, messages_of


def queue(staff, kind="recount", role="inventory"):
    return task_create(actor=staff.actor, role=role, kind=kind, payload={"sku": 1}).task


def test_tasks_page_lists_tasks_newest_first_with_counts_and_filters(staff, inventory):
    first, second = queue(staff, "a"), queue(staff, "b", role="docs")
    response = staff.get("/tasks/")
    assert [row["task"].id for row in response.context["rows"]] == [second.id, first.id]
    assert response.context["counts"]["queued"] == 2
    assert [row["task"].id for row in staff.get("/tasks/?role=docs").context["rows"]] == [second.id]
    assert staff.get("/tasks/?status=bogus").status_code == 400


def test_requeue_a_stuck_claim_is_an_event_with_the_human_and_reason(staff, inventory):
    task = queue(staff)
    task_claim(actor=inventory.actor, ttl_seconds=300)
    response = staff.post(f"/tasks/{task.id}/requeue/", {"reason": "worker is stuck"}, follow=True)
    assert f"Task {task.id} (recount) requeued." in messages_of(response)
    task.refresh_from_db()
    assert (task.status, task.claimed_by_id) == ("queued", None)
    event = last_event("task.requeued")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "worker is stuck")


def test_cancel_is_an_event_with_the_human_and_reason(staff, inventory):
    task = queue(staff)
    response = staff.post(f"/tasks/{task.id}/cancel/", {"reason": "not needed any more"})
    assert response.status_code == 303
    assert Task.objects.get(id=task.id).status == "cancelled"
    event = last_event("task.cancelled")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "not needed any more")


def test_cancelling_a_completed_task_is_refused_with_the_reason(staff, inventory):
    task = queue(staff)
    task_claim(actor=inventory.actor, ttl_seconds=60)
    task_complete(actor=inventory.actor, task_id=task.id, result={"ok": True})
    response = staff.post(f"/tasks/{task.id}/cancel/", {"reason": "oops"})
    assert response.status_code == 409
    assert f"task {task.id} is already completed" in response.content.decode()
    assert Task.objects.get(id=task.id).status == "completed"


def test_requeue_needs_a_reason(staff, inventory):
    task = queue(staff)
    task_claim(actor=inventory.actor, ttl_seconds=60)
    assert staff.post(f"/tasks/{task.id}/requeue/", {"reason": ""}).status_code == 400
    assert Task.objects.get(id=task.id).status == "claimed"
