"""/agents/: the kill switch. Suspending from the dashboard is an event with the human and reason; the
agent's next request is refused, its locks are released and its claims requeued; resume undoes it."""

from memoryhub.agents.models import Agent
from memoryhub.locks.models import Lease
from memoryhub.locks.services import lock_acquire
from memoryhub.tasks.models import Task
from memoryhub.tasks.services import task_claim, task_create

from .conftest import last_event, messages_of


def test_agents_page_lists_agents_with_status_and_load(staff, docs, inventory):
    lock_acquire(actor=inventory.actor, resources=["inventory:sku-1"], ttl_seconds=60)
    response = staff.get("/agents/")
    rows = {row["agent"].id: row for row in response.context["rows"]}
    assert rows["inventory-1"]["leases"] == 1
    assert rows["docs-1"]["leases"] == 0
    page = response.content.decode()
    assert "Suspend" in page and 'for="reason-suspend-docs-1"' in page


def test_suspend_is_an_event_with_the_human_and_reason_and_frees_what_the_agent_held(staff, inventory):
    lease = lock_acquire(actor=inventory.actor, resources=["inventory:sku-1"], ttl_seconds=60).lease
    task_create(actor=staff.actor, role="inventory", kind="recount")
    task = task_claim(actor=inventory.actor, ttl_seconds=60).task

    response = staff.post("/agents/inventory-1/suspend/", {"reason": "looping on sku-1"}, follow=True)

    assert response.status_code == 200
    assert "inventory-1 suspended." in " ".join(messages_of(response))
    agent = Agent.objects.get(id="inventory-1")
    assert (agent.status, agent.status_reason) == ("suspended", "looping on sku-1")
    event = last_event("agent.suspended")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "looping on sku-1")
    assert Lease.objects.get(id=lease.id).release_reason == "suspended"
    assert Task.objects.get(id=task.id).status == "queued"
    # Its next request is refused.
    refused = inventory.client.get("/api/v1/me/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "agent_suspended"


def test_resume_is_an_event_with_the_human_and_reason(staff, docs):
    staff.post("/agents/docs-1/suspend/", {"reason": "investigating"})
    response = staff.post("/agents/docs-1/resume/", {"reason": "false alarm"})
    assert response.status_code == 303
    assert Agent.objects.get(id="docs-1").status == "active"
    event = last_event("agent.resumed")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "false alarm")
    assert docs.client.get("/api/v1/me/").status_code == 200


def test_suspend_needs_a_reason(staff, docs):
    response = staff.post("/agents/docs-1/suspend/", {"reason": ""})
    assert response.status_code == 400
    assert "Give a reason" in response.content.decode()
    assert Agent.objects.get(id="docs-1").status == "active"


def test_suspending_an_unknown_agent_says_so(staff, policies):
    response = staff.post("/agents/ghost/suspend/", {"reason": "x"})
    assert response.status_code == 404
    assert "no agent &#x27;ghost&#x27;" in response.content.decode()


def test_suspending_twice_changes_nothing_the_second_time(staff, docs):
    staff.post("/agents/docs-1/suspend/", {"reason": "first"})
    response = staff.post("/agents/docs-1/suspend/", {"reason": "second"}, follow=True)
    assert "docs-1 was already suspended." in messages_of(response)
    assert Agent.objects.get(id="docs-1").status_reason == "first"
