"""POST tasks/: one row per idempotency key and caller, and a task.created event."""

import pytest

from memoryhub.events.models import Event
from memoryhub.tasks.models import Task

from .conftest import create, error_of, post

pytestmark = pytest.mark.django_db


def test_creating_a_task_queues_it_with_an_event(docs):
    response = create(docs, kind="index", priority=5, max_attempts=2)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["role"], body["kind"], body["priority"]) == ("queued", "worker", "index", 5)
    assert body["created_by"] == "docs-1" and body["created"] is True
    event = Event.objects.get(seq=body["seq"])
    assert (event.type, event.namespace, event.resource) == ("task.created", f"task:{body['id']}", f"task:{body['id']}")
    assert event.audience == ["role:worker", "agent:docs-1"]


def test_the_same_idempotency_key_returns_the_existing_task(docs):
    first = create(docs, idempotency_key="doc-42").json()
    again = create(docs, idempotency_key="doc-42")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"] and again.json()["created"] is False
    assert again.json()["seq"] == first["seq"]
    assert Task.objects.count() == 1
    assert Event.objects.filter(type="task.created").count() == 1


def test_idempotency_keys_belong_to_their_caller(docs, worker):
    create(docs, idempotency_key="doc-42")
    assert create(worker, idempotency_key="doc-42").status_code == 201
    assert Task.objects.count() == 2


def test_a_human_may_queue_tasks(human):
    body = create(human).json()
    assert body["created_by"] == "human:alice"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"role": "Bad Role", "kind": "x"}, "role"),
        ({"role": "worker"}, "kind"),
        ({"role": "worker", "kind": "x", "max_attempts": 0}, "max_attempts"),
        ({"role": "worker", "kind": "x", "status": "completed"}, "status"),
    ],
)
def test_bad_tasks_are_400(docs, body, field):
    assert field in error_of(post(docs, "tasks/", body), 400, "invalid")
    assert not Task.objects.exists()
