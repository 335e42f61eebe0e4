"""complete / fail (the claimer), requeue / cancel (humans)."""

import json

import pytest

from memoryhub.events.models import Event
from memoryhub.tasks.models import Task

from .conftest import claim, complete, create, error_of, post

pytestmark = pytest.mark.django_db


def test_completing_twice_returns_the_first_result_and_records_once(docs, worker):
    create(docs)
    task = claim(worker).json()
    first = complete(worker, task["id"], {"pages": 3})
    assert first.status_code == 200
    assert (first.json()["status"], first.json()["result"]) == ("completed", {"pages": 3})
    again = complete(worker, task["id"], {"pages": 99})
    assert again.status_code == 200
    assert again.json()["result"] == {"pages": 3}
    assert again.json()["replayed"] is True and again.json()["seq"] == first.json()["seq"]
    assert Event.objects.filter(type="task.completed").count() == 1


def test_anyone_else_completing_gets_already_claimed(docs, worker, worker2):
    create(docs)
    task = claim(worker).json()
    error_of(complete(worker2, task["id"], {"x": 1}), 409, "already_claimed")
    complete(worker, task["id"], {"x": 1})
    details = error_of(complete(worker2, task["id"], {"x": 2}), 409, "already_claimed")
    assert details["status"] == "completed"
    assert Task.objects.get(id=task["id"]).result == {"x": 1}


def test_completion_ends_the_tasks_working_memory(docs, worker):
    create(docs)
    task = claim(worker).json()
    urls = [
        f"/api/v1/memories/task:{task['id']}/notes/",
        f"/api/v1/memories/task:{task['id']}:scratch/draft/",  # below the task's namespace
        f"/api/v1/memories/task:{task['id']}0/notes/",  # another task's (same prefix, no separator)
    ]
    for url in urls:
        put = worker.client.put(url, json.dumps({"content": {"step": 1}}), content_type="application/json")
        assert put.status_code == 201, put.content
    done = complete(worker, task["id"], {})
    error_of(worker.client.get(urls[0]), 404, "not_found")
    error_of(worker.client.get(urls[1]), 404, "not_found")
    assert worker.client.get(urls[2]).status_code == 200
    assert Event.objects.get(seq=done.json()["seq"]).after["memories_expired"] == 2


def test_a_refused_completion_leaves_the_working_memory_alone(docs, worker, worker2):
    create(docs)
    task = claim(worker).json()
    url = f"/api/v1/memories/task:{task['id']}/notes/"
    worker.client.put(url, json.dumps({"content": {"step": 1}}), content_type="application/json")
    error_of(complete(worker2, task["id"], {}), 409, "already_claimed")
    assert worker.client.get(url).status_code == 200


def test_failing_with_retry_requeues_until_attempts_run_out(docs, worker):
    task = create(docs, max_attempts=2).json()
    claim(worker)
    response = post(worker, f"tasks/{task['id']}/fail/", {"error": "timeout", "retry": True})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error"]) == ("queued", "timeout")
    claim(worker)
    response = post(worker, f"tasks/{task['id']}/fail/", {"error": "timeout again", "retry": True})
    assert response.json()["status"] == "dead"
    assert [e.type for e in Event.objects.filter(resource=f"task:{task['id']}").order_by("seq")][-2:] == [
        "task.failed",
        "task.dead",
    ]


def test_failing_without_retry_marks_it_failed(docs, worker, worker2):
    task = create(docs).json()
    claim(worker)
    error_of(post(worker2, f"tasks/{task['id']}/fail/", {"error": "x"}), 409, "already_claimed")
    assert post(worker, f"tasks/{task['id']}/fail/", {"error": "bad input"}).json()["status"] == "failed"
    assert claim(worker2).status_code == 204


def test_humans_requeue_and_cancel_agents_may_not(docs, worker, human):
    task = create(docs).json()
    claim(worker)
    error_of(post(worker, f"tasks/{task['id']}/requeue/"), 403, "forbidden")
    requeued = post(human, f"tasks/{task['id']}/requeue/", {"reason": "stuck"})
    assert requeued.status_code == 200, requeued.content
    assert (requeued.json()["status"], requeued.json()["claimed_by"]) == ("queued", None)
    event = Event.objects.get(seq=requeued.json()["seq"])
    assert (event.type, event.actor_kind, event.reason) == ("task.requeued", "human", "stuck")
    error_of(post(human, f"tasks/{task['id']}/requeue/"), 409, "conflict")

    error_of(post(worker, f"tasks/{task['id']}/cancel/"), 403, "forbidden")
    cancelled = post(human, f"tasks/{task['id']}/cancel/", {"reason": "not needed"})
    assert cancelled.json()["status"] == "cancelled"
    assert claim(worker).status_code == 204
    error_of(post(human, f"tasks/{task['id']}/cancel/"), 409, "conflict")


def test_a_requeued_dead_task_gets_fresh_attempts(docs, worker, human):
    task = create(docs, max_attempts=1).json()
    claim(worker)
    post(worker, f"tasks/{task['id']}/fail/", {"error": "x", "retry": True})
    assert Task.objects.get(id=task["id"]).status == "dead"
    assert post(human, f"tasks/{task['id']}/requeue/").json()["attempts"] == 0
    assert claim(worker).json()["id"] == task["id"]


def test_listing_and_reading_show_only_what_the_caller_may_see(docs, worker, human, make_agent):
    mine = create(docs).json()
    create(docs, role="docs")
    outsider = make_agent("sales-1", "sales")
    assert [t["id"] for t in worker.client.get("/api/v1/tasks/?role=worker").json()["results"]] == [mine["id"]]
    assert len(worker.client.get("/api/v1/tasks/").json()["results"]) == 1
    assert len(docs.client.get("/api/v1/tasks/").json()["results"]) == 2  # its role's and the ones it created
    assert len(human.get("/api/v1/tasks/?status=queued").json()["results"]) == 2
    assert worker.client.get(f"/api/v1/tasks/{mine['id']}/").json()["kind"] == "index"
    error_of(outsider.client.get(f"/api/v1/tasks/{mine['id']}/"), 404, "not_found")
    error_of(complete(outsider, mine["id"]), 404, "not_found")
    error_of(worker.client.get("/api/v1/tasks/?status=bogus"), 400, "invalid")


@pytest.mark.parametrize("action", ["heartbeat", "complete", "fail"])
def test_a_lapsed_claim_cannot_be_revived_or_finished_by_its_old_holder(docs, worker, action):
    """The zombie: its claim lapsed while it stalled, and the sweeper has not requeued it yet (the row
    still says `claimed` by it). Coming back, it may not extend, complete or fail the task."""
    from datetime import timedelta

    from django.utils import timezone

    create(docs)
    task = claim(worker, ttl=30).json()
    Task.objects.filter(id=task["id"]).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    body = {"heartbeat": {"ttl_seconds": 60}, "complete": {"result": {"x": 1}}, "fail": {"error": "e"}}[action]
    details = error_of(post(worker, f"tasks/{task['id']}/{action}/", body), 409, "already_claimed")
    assert details["status"] == "claimed"
    row = Task.objects.get(id=task["id"])
    assert row.claim_expires_at < timezone.now() and row.status == "claimed" and row.result is None
    assert not Event.objects.filter(type__in=["task.completed", "task.failed"]).exists()
