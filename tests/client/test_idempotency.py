"""The client's own retries never duplicate: a write whose answer is lost on the way back is sent
again with the SAME Idempotency-Key, and the hub replays the first answer instead of writing twice.

The network is made to fail for real (the request reaches the hub, the response is dropped); the hub
is the real server."""

from __future__ import annotations

import httpx
import pytest

from memoryhub.client import HubClient
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory as MemoryRow
from memoryhub.tasks.models import Task as TaskRow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


class LosesResponses(httpx.BaseTransport):
    """Forwards every request; for the first `lose` writes, drops the response and raises a read error,
    as a connection reset after the server has already committed would."""

    def __init__(self, lose: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose = lose
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "GET":
            self.keys.append(request.headers.get("Idempotency-Key", ""))
            if self.lose > 0:
                self.lose -= 1
                response.read()
                response.close()
                raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_retried_write_is_replayed_not_written_twice(hub_url, make_agent, policies):
    persona = make_agent("worker-1", "worker")
    network = LosesResponses(lose=2)
    with HubClient(hub_url, token=persona.token, transport=network) as hub:
        memory = hub.put("counter:orders", "o-1", {"qty": 3}, reason="order placed")

    assert memory.replayed  # the answer is the stored first one
    assert memory.version == 1
    assert len(network.keys) == 3 and len(set(network.keys)) == 1  # three sends, one key
    assert MemoryRow.objects.get(namespace="counter:orders", key="o-1").version == 1
    assert Event.objects.filter(resource="counter:orders/o-1").count() == 1


def test_a_retried_task_creation_makes_one_task(hub_url, make_agent, policies):
    persona = make_agent("lead-1", "lead")
    network = LosesResponses(lose=1)
    with HubClient(hub_url, token=persona.token, transport=network) as hub:
        task = hub.create_task("docs", "render", {"doc": "x"})
        assert hub.task(task.id).status == "queued"

    assert TaskRow.objects.filter(kind="render").count() == 1
    assert Event.objects.filter(type="task.created").count() == 1


def test_each_logical_write_gets_its_own_key(hub_url, make_agent, policies):
    persona = make_agent("worker-1", "worker")
    network = LosesResponses(lose=0)
    with HubClient(hub_url, token=persona.token, transport=network) as hub:
        hub.put("scratch:a", "k", {"i": 1})
        hub.put("scratch:a", "k", {"i": 1})  # the same request again is a new write, on purpose
    assert len(set(network.keys)) == 2
    assert MemoryRow.objects.get(namespace="scratch:a", key="k").version == 2


def test_a_replayed_retry_storm_with_an_explicit_key_creates_one_task(hub_url, make_agent, policies):
    persona = make_agent("lead-1", "lead")
    with HubClient(hub_url, token=persona.token) as hub:
        tasks = [hub.create_task("docs", "render", {"doc": "y"}, idempotency_key="render-y") for _ in range(10)]
    assert len({t.id for t in tasks}) == 1
    assert [t.created for t in tasks] == [True] + [False] * 9
    assert TaskRow.objects.filter(kind="render").count() == 1
