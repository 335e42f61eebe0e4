"""SCENARIO 10: a human suspends a runaway agent. Its next request is refused, its locks are freed
and its task claims go back to the queue, each with an event; resuming lets it work again."""

import json

import pytest

from memoryhub.events.models import Event
from memoryhub.locks.models import Lease
from memoryhub.tasks.models import Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def runaway(policies, make_agent):
    return make_agent("inventory-1", "inventory")


@pytest.fixture
def colleague(policies, make_agent):
    return make_agent("inventory-2", "inventory")


def post(client, path, body=None):
    client = getattr(client, "client", client)
    return client.post(f"/api/v1/{path}", json.dumps(body or {}), content_type="application/json")


def test_suspending_frees_locks_and_claims_and_refuses_the_agent(runaway, colleague, human):
    lease = post(
        runaway, "locks/", {"resources": ["pricing-table", "memory:inventory:sku-1/count"], "ttl_seconds": 300}
    ).json()
    task = post(human, "tasks/", {"role": "inventory", "kind": "recount"}).json()
    assert post(runaway, "tasks/claim/", {"ttl_seconds": 300}).json()["id"] == task["id"]

    response = post(human, "agents/inventory-1/suspend/", {"reason": "looping"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "suspended"

    refused = runaway.client.get("/api/v1/me/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "agent_suspended"
    assert post(runaway, "locks/", {"resources": ["other"], "ttl_seconds": 30}).json()["error"]["code"] == (
        "agent_suspended"
    )

    freed = Lease.objects.get(id=lease["id"])
    assert (freed.release_reason, freed.depth) == ("suspended", 0)
    assert Task.objects.get(id=task["id"]).status == "queued"
    suspended = Event.objects.get(type="agent.suspended")
    lock_event = Event.objects.get(type="lock.force_released")
    requeued = Event.objects.get(type="task.requeued")
    for event in (lock_event, requeued):
        assert event.seq > suspended.seq and event.reason == "looping"
        assert (event.actor_kind, event.actor_id) == ("human", "alice")
        assert "agent:inventory-1" in event.audience

    # The work is available to others at once.
    assert post(colleague, "locks/", {"resources": ["pricing-table"], "ttl_seconds": 30}).status_code == 201
    assert post(colleague, "tasks/claim/", {"ttl_seconds": 30}).json()["id"] == task["id"]

    assert post(human, "agents/inventory-1/resume/").json()["status"] == "active"
    assert runaway.client.get("/api/v1/me/").status_code == 200
    assert (
        post(runaway, "locks/", {"resources": ["memory:inventory:sku-1/count"], "ttl_seconds": 30}).status_code == 201
    )


def test_agents_cannot_suspend(runaway, colleague):
    response = post(colleague, "agents/inventory-1/suspend/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert runaway.client.get("/api/v1/me/").status_code == 200


def test_suspending_an_agent_with_nothing_held_records_only_the_suspension(runaway, human):
    post(human, "agents/inventory-1/suspend/")
    assert not Event.objects.filter(type__in=["lock.force_released", "task.requeued"]).exists()
    assert Event.objects.filter(type="agent.suspended").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_suspension_racing_acquisitions_leaves_the_agent_holding_nothing(policies, make_agent, human):
    import threading

    from rest_framework.test import APIClient

    from tests.locks.conftest import run_threads

    runaway = make_agent("inventory-1", "inventory")
    granted = threading.Semaphore(0)
    outcome = {"granted": 0, "last": None}

    def hammer(_: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {runaway.token}")
        for n in range(200):
            response = post(client, "locks/", {"resources": [f"r-{n}"], "ttl_seconds": 300})
            if response.status_code != 201:
                outcome["last"] = response
                return
            outcome["granted"] += 1
            granted.release()

    def suspend(_: int) -> None:
        for _ in range(5):  # let it take a few locks first
            assert granted.acquire(timeout=30)
        assert post(human, "agents/inventory-1/suspend/").status_code == 200

    errors = run_threads(lambda i: (hammer if i == 0 else suspend)(i), 2)
    assert errors == []
    assert outcome["last"] is not None and outcome["last"].json()["error"]["code"] == "agent_suspended"
    assert outcome["granted"] >= 5
    assert not Lease.objects.filter(agent_id="inventory-1", released_at=None).exists()
    assert Event.objects.filter(type="lock.force_released").count() == outcome["granted"]
