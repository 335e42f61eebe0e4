"""The provenance log: one event per change in the same transaction, seq strictly increasing with no
gaps or reuse, append-only, and events/ shows each caller only what it may read."""

import json
import threading

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from memoryhub.actors import SYSTEM
from memoryhub.events.models import Event
from memoryhub.events.services import event_append
from memoryhub.memories.services import memory_put


def test_event_rows_cannot_be_changed_or_deleted(db):
    with transaction.atomic():
        event = event_append(actor=SYSTEM, type="policy.changed", summary="x")
    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()
    with pytest.raises(DatabaseError), transaction.atomic():  # the database refuses too
        Event.objects.filter(seq=event.seq).update(summary="rewritten")
    assert Event.objects.get(seq=event.seq).summary == "x"


def test_events_must_be_appended_inside_the_change_transaction(transactional_db):
    with pytest.raises(RuntimeError):
        event_append(actor=SYSTEM, type="policy.changed")


def test_a_rolled_back_change_leaves_no_event_and_no_gap(db, policies):
    with pytest.raises(IntegrityError), transaction.atomic():
        event_append(actor=SYSTEM, type="policy.changed")
        raise IntegrityError("the change failed")
    with transaction.atomic():
        kept = event_append(actor=SYSTEM, type="policy.changed")
    seqs = list(Event.objects.values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert kept.seq == seqs[-1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_contiguous_strictly_increasing_seqs(policies, make_agent):
    """Seqs are handed out under a row lock held to commit: a reader never sees N+1 before N."""
    writers = [make_agent(f"w-{i}", "worker") for i in range(8)]
    start = threading.Barrier(len(writers))
    seen_orders: list[list[int]] = []

    def write(index: int) -> None:
        try:
            start.wait()
            for n in range(10):
                memory_put(actor=writers[index].actor, namespace="scratch:race", key=f"k{index}-{n}", content={"n": n})
                # Whatever this thread sees is a prefix without holes.
                seqs = list(Event.objects.values_list("seq", flat=True).order_by("seq"))
                seen_orders.append(seqs)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = list(Event.objects.values_list("seq", flat=True).order_by("seq"))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert Event.objects.filter(type="memory.created").count() == 80
    for seen in seen_orders:
        assert seen == list(range(seen[0], seen[0] + len(seen)))
    at = list(Event.objects.order_by("seq").values_list("at", flat=True))
    assert at == sorted(at)


def test_events_endpoint_filters_to_what_the_caller_may_read(policies, make_agent, human):
    sales = make_agent("sales-1", "sales")
    support = make_agent("support-1", "support")
    docs = make_agent("docs-1", "docs")
    for persona, namespace in ((sales, "customer:acme"), (support, "customer:vip:x"), (docs, "code:style")):
        persona.client.put(
            f"/api/v1/memories/{namespace}/k/", json.dumps({"content": {"a": 1}}), content_type="application/json"
        )

    def resources(client, query=""):
        return [e["resource"] for e in client.get(f"/api/v1/events/?type=memory.*{query}").json()["results"]]

    assert resources(sales.client) == ["customer:acme/k", "code:style/k"]
    assert resources(docs.client) == ["code:style/k"]
    assert resources(human) == ["customer:acme/k", "customer:vip:x/k", "code:style/k"]
    assert resources(human, "&namespace=customer:*") == ["customer:acme/k", "customer:vip:x/k"]
    assert resources(human, "&actor=docs-1") == ["code:style/k"]
    # an agent always sees its own events, even where it cannot read
    assert "agent:docs-1" in [e["resource"] for e in docs.client.get("/api/v1/events/").json()["results"]]


def test_events_since_and_limit_page_forward(policies, make_agent):
    writer = make_agent("w-1", "worker")
    for n in range(5):
        writer.client.put(
            f"/api/v1/memories/scratch:x/k{n}/", json.dumps({"content": {}}), content_type="application/json"
        )
    first = writer.client.get("/api/v1/events/?type=memory.created&limit=2").json()
    assert len(first["results"]) == 2
    rest = writer.client.get(f"/api/v1/events/?type=memory.created&since={first['next_since']}").json()
    assert [e["resource"] for e in first["results"] + rest["results"]] == [f"scratch:x/k{n}" for n in range(5)]
    assert all(a["seq"] < b["seq"] for a, b in zip(rest["results"], rest["results"][1:], strict=False))
    assert writer.client.get("/api/v1/events/?since=abc").status_code == 400


def test_provenance_comes_from_the_token_not_the_body(policies, make_agent):
    sales = make_agent("sales-1", "sales")
    sales.client.put(
        "/api/v1/memories/customer:acme/k/", json.dumps({"content": {"a": 1}}), content_type="application/json"
    )
    event = Event.objects.get(type="memory.created")
    assert (event.actor_kind, event.actor_id, event.actor_role) == ("agent", "sales-1", "sales")
