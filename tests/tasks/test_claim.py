"""POST tasks/claim/: an agent's own role only, best first, 204 when there is nothing; lapsed claims
go back to the queue and die after max_attempts."""

import pytest

from memoryhub.events.models import Event
from memoryhub.tasks.models import Task
from memoryhub.tasks.services import claims_requeue_expired

from .conftest import claim, create, error_of, lapse_claim, post

pytestmark = pytest.mark.django_db


def test_claiming_takes_the_highest_priority_then_the_oldest(docs, worker):
    low = create(docs, kind="a").json()
    high = create(docs, kind="b", priority=10).json()
    response = claim(worker, ttl=30)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == high["id"]
    assert (body["status"], body["claimed_by"], body["attempts"]) == ("claimed", "worker-1", 1)
    event = Event.objects.get(seq=body["seq"])
    assert (event.type, event.actor_id) == ("task.claimed", "worker-1")
    assert "agent:worker-1" in event.audience and "role:worker" in event.audience
    assert claim(worker).json()["id"] == low["id"]
    assert claim(worker).status_code == 204


def test_kinds_narrow_the_claim(docs, worker):
    create(docs, kind="index")
    wanted = create(docs, kind="translate").json()
    assert claim(worker, kinds=["translate"]).json()["id"] == wanted["id"]
    assert claim(worker, kinds=["translate"]).status_code == 204


def test_agents_claim_only_tasks_of_their_own_role(docs, worker):
    create(docs, role="docs")
    assert claim(worker).status_code == 204
    error_of(claim(worker, role="docs"), 403, "forbidden")
    assert claim(docs).status_code == 200


def test_humans_do_not_claim(human, docs):
    create(docs)
    error_of(claim(human, role="worker"), 403, "forbidden")


def test_a_lapsed_claim_is_claimable_at_once(docs, worker, worker2):
    task = create(docs).json()
    first = claim(worker).json()
    lapse_claim(first["id"])
    response = claim(worker2)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == task["id"]
    assert (body["claimed_by"], body["attempts"]) == ("worker-2", 2)
    requeued = Event.objects.get(type="task.requeued")
    assert requeued.actor_kind == "system" and requeued.reason == "claim expired"
    assert "agent:worker-1" in requeued.audience
    # The first claimer can no longer finish it.
    error_of(post(worker, f"tasks/{task['id']}/complete/", {"result": 1}), 409, "already_claimed")


def test_after_max_attempts_a_task_is_dead(docs, worker):
    task = create(docs, max_attempts=2).json()
    for _ in range(2):
        assert claim(worker).json()["id"] == task["id"]
        lapse_claim(task["id"])
    assert claim(worker).status_code == 204
    dead = Task.objects.get(id=task["id"])
    assert (dead.status, dead.attempts, dead.claimed_by_id) == ("dead", 2, None)
    assert Event.objects.filter(type="task.dead").count() == 1


def test_the_sweeper_requeues_lapsed_claims(docs, worker):
    create(docs)
    task = claim(worker).json()
    assert claims_requeue_expired() == 0
    lapse_claim(task["id"])
    assert claims_requeue_expired() == 1
    assert claims_requeue_expired() == 0
    assert Task.objects.get(id=task["id"]).status == "queued"


def test_heartbeat_extends_the_claim_for_its_claimer_only(docs, worker, worker2):
    create(docs)
    task = claim(worker, ttl=5).json()
    response = post(worker, f"tasks/{task['id']}/heartbeat/", {"ttl_seconds": 300})
    assert response.status_code == 200
    assert response.json()["claim_expires_at"] > task["claim_expires_at"]
    details = error_of(post(worker2, f"tasks/{task['id']}/heartbeat/"), 409, "already_claimed")
    assert details["claimed_by"] == "worker-1"


def test_a_bad_claim_is_400(worker):
    assert "ttl_seconds" in error_of(claim(worker, ttl=0), 400, "invalid")
    assert "kinds" in error_of(claim(worker, kinds="index"), 400, "invalid")
