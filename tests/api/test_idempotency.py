"""Idempotency-Key: the first response is stored and replayed; reuse with another request is 422."""

import json
import threading
import time

import pytest
from django.db import connection, transaction
from django.http import HttpResponse
from rest_framework.test import APIClient

from contexts.models import ContextEntry
from contexts.services import context_send
from memoryhub.api import idempotency
from memoryhub.api.idempotency import Claim
from memoryhub.api.models import IdempotencyRecord
from memoryhub.events.models import Event
from memoryhub.locks.models import Lease
from memoryhub.memories.models import Memory
from memoryhub.memories.services import memory_put
from memoryhub.tasks.models import Task
from policies.selectors import caller_for


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


# --- the service: the key recorded with the change, the answer stored after ---------------------------


def _first_request_committed_without_answer(persona, key: str, method: str, path: str, body: dict):
    """The first request as far as a process that died between its commit and storing its answer got:
    the change committed by the service with the request's claim (so with the key's record, in the
    change's transaction), and `settle` never ran. Returns the claim and the caller."""
    claim = Claim.of(principal=persona.actor.label, key=key, method=method, path=path, body=json.dumps(body).encode())
    return claim, caller_for(persona.actor).with_idempotency_key(key, claim)


def test_the_key_is_recorded_in_the_change_s_transaction_and_the_answer_after(agent):
    claim, caller = _first_request_committed_without_answer(
        agent, "k", "PUT", "/api/v1/memories/scratch:notes/n/", {"content": {"a": 1}}
    )
    with pytest.raises(RuntimeError), transaction.atomic():
        memory_put(actor=caller, namespace="scratch:notes", key="n", content={"a": 1})
        raise RuntimeError("rolled back")
    assert not IdempotencyRecord.objects.exists()  # no change, no claim: a retry runs afresh
    memory_put(actor=caller, namespace="scratch:notes", key="n", content={"a": 1})
    record = IdempotencyRecord.objects.get()
    assert (record.token, record.status_code) == (claim.token, None)


def test_a_request_s_later_transactions_find_its_own_claim_and_a_repeat_s_are_refused(agent):
    """A request that makes several transactions (each appending events) claims the key once; a
    repeat's change under the key is refused (KeyTaken) and leaves nothing."""
    claim, caller = _first_request_committed_without_answer(
        agent, "k", "PUT", "/api/v1/memories/scratch:notes/a/", {"content": {"a": 1}}
    )
    memory_put(actor=caller, namespace="scratch:notes", key="a", content={"a": 1})
    memory_put(actor=caller, namespace="scratch:notes", key="b", content={"b": 1})
    assert IdempotencyRecord.objects.get().token == claim.token
    assert Event.objects.filter(idempotency_key="k").count() == 2
    _repeat, repeat = _first_request_committed_without_answer(
        agent, "k", "PUT", "/api/v1/memories/scratch:notes/a/", {"content": {"a": 1}}
    )
    with pytest.raises(idempotency.KeyTaken):
        memory_put(actor=repeat, namespace="scratch:notes", key="c", content={"c": 1})
    assert not Memory.objects.filter(key="c").exists()
    assert Event.objects.filter(idempotency_key="k").count() == 2


def test_a_retry_after_a_crash_between_commit_and_storing_the_answer_replays(agent, settings):
    settings.MEMORYHUB_IDEMPOTENCY_WAIT_MS = 20
    _claim, caller = _first_request_committed_without_answer(
        agent, "k", "PUT", "/api/v1/memories/scratch:notes/n/", {"content": {"a": 1}}
    )
    written = memory_put(actor=caller, namespace="scratch:notes", key="n", content={"a": 1})

    retry = put(agent.client, "n", {"a": 1}, "k")
    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    body = retry.json()
    assert (body["seq"], body["version"], body["content"]) == (written.event.seq, 1, {"a": 1})
    assert retry["ETag"] == '"1"'
    assert Memory.objects.get().version == 1
    assert Event.objects.filter(type__startswith="memory.").count() == 1
    # The rebuilt answer is stored: later repeats replay it as they would the first.
    assert IdempotencyRecord.objects.get().status_code == 201
    assert put(agent.client, "n", {"a": 1}, "k").json() == body
    # ... and another body under the key is still refused.
    assert put(agent.client, "n", {"a": 2}, "k").status_code == 422


@pytest.mark.django_db(transaction=True)
def test_a_retry_of_a_committed_conditional_write_replays_and_records_no_refusal(transactional_db, agent, settings):
    # The retry's If-Match is stale now (its own first attempt moved the version on): the key must
    # answer before the precondition, or the log gains a conflict.rejected nobody caused. Outside a
    # test transaction: on PostgreSQL a refusal is recorded in autocommit.
    settings.MEMORYHUB_IDEMPOTENCY_WAIT_MS = 20
    assert put(agent.client, "n", {"a": 1}, "before").status_code == 201
    _claim, caller = _first_request_committed_without_answer(
        agent, "k", "PUT", "/api/v1/memories/scratch:notes/n/", {"content": {"a": 2}}
    )
    written = memory_put(actor=caller, namespace="scratch:notes", key="n", content={"a": 2}, if_match=1)

    retry = put(agent.client, "n", {"a": 2}, "k", HTTP_IF_MATCH='"1"')
    assert retry.status_code == 200 and retry["Idempotent-Replayed"] == "true"
    assert (retry.json()["seq"], retry.json()["version"]) == (written.event.seq, 2)
    assert not Event.objects.filter(type="conflict.rejected").exists()
    assert Memory.objects.get().version == 2


def test_a_repeat_whose_first_answer_is_lost_and_cannot_be_rebuilt_is_a_clear_409(agent, make_agent, settings):
    settings.MEMORYHUB_IDEMPOTENCY_WAIT_MS = 20
    make_agent("sales-1", "sales")
    body = {"to_role": "sales", "context_type": "note", "content": {"n": 1}}
    _claim, caller = _first_request_committed_without_answer(agent, "k", "POST", "/api/v1/contexts/", body)
    context_send(actor=caller, **body)

    repeat = agent.client.post(
        "/api/v1/contexts/", json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert repeat.status_code == 409
    assert repeat.json()["error"]["code"] == "conflict"
    assert ContextEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_repeat_waits_for_the_answer_the_first_request_is_storing(transactional_db, policies, make_agent, settings):
    settings.MEMORYHUB_IDEMPOTENCY_WAIT_MS = 30_000
    agent = make_agent("worker-1", "worker")
    claim, caller = _first_request_committed_without_answer(
        agent, "k", "PUT", "/api/v1/memories/scratch:notes/n/", {"content": {"a": 1}}
    )
    memory_put(actor=caller, namespace="scratch:notes", key="n", content={"a": 1})
    replies = []
    warm = threading.Event()

    def repeat() -> None:
        try:
            agent.client.get("/api/v1/memories/scratch:notes/n/")  # its connection and caches warm
            warm.set()
            replies.append(put(agent.client, "n", {"a": 1}, "k"))
        finally:
            connection.close()

    thread = threading.Thread(target=repeat)
    started = time.monotonic()
    thread.start()
    assert warm.wait(timeout=30)
    # The first request stores its answer (whatever it was: this one says so) while the repeat waits.
    # The pause only lets the repeat find the record without an answer first (so a repeat that did
    # not wait would rebuild the answer and fail the last assertion); the test holds whatever it is.
    time.sleep(0.5)
    stored = HttpResponse(b'{"stored": "by the first request"}', status=201, content_type="application/json")
    assert idempotency.settle(claim, stored, taken=False, rebuild=lambda since: None) is stored
    thread.join(timeout=60)
    assert time.monotonic() - started < 30
    (reply,) = replies
    assert reply.status_code == 201 and reply["Idempotent-Replayed"] == "true"
    assert reply.json() == {"stored": "by the first request"}  # waited for it, not rebuilt from the log


def _send_concurrently(count: int, send) -> list:
    start = threading.Barrier(count)
    responses = []

    def run(index: int) -> None:
        start.wait()
        try:
            responses.append(send(index))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


WRITES = {
    "memory": ("PUT", "/api/v1/memories/scratch:notes/n/", {"content": {"a": 1}}, lambda: Memory.objects.count()),
    "context": (
        "POST",
        "/api/v1/contexts/",
        {"to_role": "worker", "context_type": "note", "content": {"n": 1}},
        lambda: ContextEntry.objects.count(),
    ),
    "lock": (
        "POST",
        "/api/v1/locks/",
        {"resources": ["res:a"], "ttl_seconds": 30},
        lambda: Lease.objects.count(),
    ),
    "task": ("POST", "/api/v1/tasks/", {"role": "worker", "kind": "k"}, lambda: Task.objects.count()),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("write", sorted(WRITES))
def test_concurrent_duplicates_change_once_and_the_others_replay(transactional_db, policies, make_agent, write):
    agent = make_agent("worker-1", "worker")
    method, path, body, changes = WRITES[write]
    responses = _send_concurrently(
        6,
        lambda _: _client(agent.token).generic(
            method, path, json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY="same"
        ),
    )
    assert changes() == 1
    first = [r for r in responses if r.get("Idempotent-Replayed") != "true"]
    assert len(first) == 1 and first[0].status_code == 201
    for response in responses:
        # A repeat gets the first answer, or (its wait over) a clear 409.
        assert response.status_code in (201, 409), response.content
        if response.status_code == 201 and response is not first[0]:
            # The replayed answer is the first one, less a lock's holder token (kept only as a digest).
            expected = first[0].json()
            if "holder_token" in expected:
                expected["holder_token"] = None
            assert response.json() == expected
    assert Event.objects.filter(idempotency_key="same").exclude(type="conflict.rejected").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_and_different_bodies_change_once_and_the_others_are_422(
    transactional_db, policies, make_agent
):
    agent = make_agent("worker-1", "worker")
    responses = _send_concurrently(6, lambda index: put(_client(agent.token), "n", {"a": index}, "same"))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 422, 422, 422, 422, 422]
    assert Memory.objects.get().version == 1
    assert Event.objects.filter(type__startswith="memory.").count() == 1
