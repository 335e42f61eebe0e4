"""hub.events(): the websocket stream, resumed after a drop from the last seq it yielded — no gap,
no repeat — including events written while the server was down."""

from __future__ import annotations

import threading

import pytest

from memoryhub.actors import Actor
from memoryhub.client import ContextEntry, Event, HubClient, Unauthenticated
from memoryhub.events.models import Event as EventRow
from memoryhub.memories.services import memory_put
from tests.servers import free_port, server

from .conftest import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def consume(stream, into: list) -> threading.Thread:
    def run() -> None:
        try:
            for item in stream:
                into.append(item)
        except BaseException as exc:  # kept for the test to see
            into.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def last_seq() -> int:
    return EventRow.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_the_stream_resumes_after_the_server_goes_away_without_gap_or_repeat(policies, make_agent):
    writer = make_agent("docs-1", "docs")
    reader = make_agent("review-1", "code-review")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start = last_seq()
    received: list = []
    hub = HubClient(base, token=writer.token)
    stream = HubClient(base, token=reader.token).events(since=start, namespaces=["code:*"], max_backoff=0.5)
    with server(port=port):
        thread = consume(stream, received)
        for n in range(3):
            hub.put("code:review", f"pr-{n}", {"n": n})
        assert eventually(lambda: len(received) == 3)

    # The server is gone, the stream keeps trying; meanwhile the log moves on.
    docs = Actor(kind="agent", id="docs-1", role="docs")
    memory_put(actor=docs, namespace="code:review", key="written-while-down", content={"n": 99})

    with server(port=port):
        for n in range(3, 5):
            hub.put("code:review", f"pr-{n}", {"n": n})
        assert eventually(lambda: len(received) == 6, timeout=20)
        stream.close()
        thread.join(timeout=10)
    hub.close()

    assert all(isinstance(item, Event) for item in received), received
    expected = list(EventRow.objects.filter(seq__gt=start, namespace="code:review").values_list("seq", flat=True))
    assert [e.seq for e in received] == expected
    assert [e.resource for e in received][3] == "code:review/written-while-down"
    assert stream.connections >= 2
    assert stream.last_seq == expected[-1]


def test_the_stream_replays_from_since_and_yields_entries_sent_to_me(hub_url, connect):
    support = connect("support-1", "support")
    sales = connect("sales-1", "sales")
    start = last_seq()
    support.put("customer:acme", "profile", {"health": "at_risk"})
    received: list = []
    stream = sales.events(since=start, contexts=True)
    thread = consume(stream, received)
    support.send(to_role="sales", context_type="escalation", content={"why": "outage"}, subject="customer:acme")
    assert eventually(lambda: any(isinstance(item, ContextEntry) for item in received))
    stream.close()
    thread.join(timeout=10)

    types = [item.type for item in received if isinstance(item, Event)]
    assert types[0] == "memory.created"  # replayed from `since`
    assert "context.sent" in types
    [entry] = [item for item in received if isinstance(item, ContextEntry)]
    assert (entry.context_type, entry.content, entry.from_agent) == ("escalation", {"why": "outage"}, "support-1")
    assert entry.ack(note="ok").acked_at


def test_since_none_starts_from_now(hub_url, connect):
    docs = connect("docs-1", "docs")
    docs.put("code:review", "old", {"n": 0})
    received: list = []
    stream = docs.events(since=None, namespaces=["code:*"])
    thread = consume(stream, received)
    assert eventually(lambda: stream.connections == 1)
    docs.put("code:review", "new", {"n": 1})
    assert eventually(lambda: len(received) == 1)
    stream.close()
    thread.join(timeout=10)
    assert received[0].resource == "code:review/new"


def test_a_refused_token_ends_the_stream_instead_of_retrying(hub_url, policies):
    with HubClient(hub_url, token="mh_wrong") as hub, pytest.raises(Unauthenticated):
        next(iter(hub.events(since=0)))
