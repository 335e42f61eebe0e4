"""Idempotency-Key: the first response is stored and replayed; reuse with another request is 422."""

import json
import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from memoryhub.api.models import IdempotencyRecord
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory


def put(client, key, content, idem, **headers):
    return client.put(
        f"/api/v1/memories/scratch:notes/{key}/",
        json.dumps({"content": content}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=idem,
        **headers,
    )


@pytest.fixture
def agent(policies, make_agent):
    return make_agent("worker-1", "worker")


def test_a_retry_replays_the_first_response_and_changes_nothing(agent):
    first = put(agent.client, "n", {"a": 1}, "key-1")
    assert first.status_code == 201
    events_before = Event.objects.count()
    again = put(agent.client, "n", {"a": 1}, "key-1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Event.objects.count() == events_before
    assert Memory.objects.get().version == 1
    assert Event.objects.get(seq=first.json()["seq"]).idempotency_key == "key-1"


def test_the_same_key_with_another_body_path_or_method_is_422(agent):
    put(agent.client, "n", {"a": 1}, "key-1")
    for response in (
        put(agent.client, "n", {"a": 2}, "key-1"),
        put(agent.client, "other", {"a": 1}, "key-1"),
        agent.client.delete("/api/v1/memories/scratch:notes/n/", HTTP_IDEMPOTENCY_KEY="key-1"),
    ):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Memory.objects.get().content == {"a": 1}


def test_keys_are_per_caller(agent, make_agent):
    other = make_agent("worker-2", "worker")
    assert put(agent.client, "n", {"a": 1}, "shared").status_code == 201
    response = put(other.client, "n", {"a": 2}, "shared")
    assert response.status_code == 200 and "Idempotent-Replayed" not in response
    assert Memory.objects.get().version == 2


def test_a_refusal_that_may_clear_is_not_stored(agent, make_agent, policies):
    """A 423 (no lock) is not remembered, so the retry after taking the lock is processed afresh."""
    inventory = make_agent("inventory-1", "inventory")
    response = inventory.client.put(
        "/api/v1/memories/inventory:sku/count/",
        json.dumps({"content": {"u": 1}}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 423
    assert not IdempotencyRecord.objects.exists()


def test_a_version_conflict_is_stored_and_replayed(agent):
    put(agent.client, "n", {"a": 1}, "k1")
    conflict = agent.client.put(
        "/api/v1/memories/counter:x/n/",
        json.dumps({"content": {"a": 1}}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k2",
        HTTP_IF_MATCH='"5"',
    )
    assert conflict.status_code == 412
    replay = agent.client.put(
        "/api/v1/memories/counter:x/n/",
        json.dumps({"content": {"a": 1}}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k2",
        HTTP_IF_MATCH='"5"',
    )
    assert replay.status_code == 412 and replay["Idempotent-Replayed"] == "true"


def test_expired_keys_are_pruned_and_reusable(agent, settings):
    from datetime import timedelta

    from django.utils import timezone

    from memoryhub.sweepers import prune_idempotency_keys

    put(agent.client, "n", {"a": 1}, "old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert prune_idempotency_keys() == 1
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_write_once(transactional_db, policies, make_agent):
    agent = make_agent("worker-1", "worker")
    start = threading.Barrier(8)
    responses = []

    def send() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent.token}")
        start.wait()
        try:
            responses.append(put(client, "n", {"a": 1}, "same-key"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in responses] == [201] * 8
    assert sum(1 for r in responses if r.get("Idempotent-Replayed") == "true") == 7
    assert Memory.objects.get().version == 1
    assert Event.objects.filter(type="memory.created").count() == 1
