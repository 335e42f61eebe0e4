"""The hand-written SQL of send, inbox fetch and bulk ack: the same answers as the ORM gave, errors
reported as before, and the inbox plan that keeps the fetch independent of the table size."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from contexts.models import Receipt
from contexts.selectors import inbox_list, inbox_query, receipt_to_dict

from .conftest import entry_count, events_of


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]


def test_an_inbox_item_is_the_sent_entry_with_the_callers_receipt(cast, send):
    first = send(subject="one", requires_ack=True, ttl_seconds=3600)
    reply = send(by=cast.alice, to_agent="sales-2", reply_to=first["id"], context_type="answer")

    [item] = cast.bob.client.get("/api/v1/inbox/", {"since": first["id"]}).json()["results"]

    assert {k: v for k, v in item.items() if k != "receipt"} == {k: v for k, v in reply.items() if k != "seq"}
    assert item["receipt"] == {"agent": "sales-2", "read_at": None, "acked_at": None, "ack_note": ""}
    [older] = inbox_list(agent_id="sales-2", state="all", limit=1)
    assert {k: v for k, v in older.items() if k != "receipt"} == {k: v for k, v in first.items() if k != "seq"}
    assert older["created_at"].endswith("Z") and older["expires_at"].endswith("Z")


def test_inbox_receipt_times_are_the_stored_ones(cast, send):
    entry = send()
    cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/ack/", {"note": "done"}, format="json")

    [item] = inbox_list(agent_id="sales-1", state="all")

    stored = receipt_to_dict(Receipt.objects.get(entry_id=entry["id"], agent_id="sales-1"))
    assert item["receipt"] == {k: v for k, v in stored.items() if k != "entry"}
    assert item["receipt"]["acked_at"].endswith("Z")


def test_inbox_fetch_is_one_statement(cast, send, django_assert_num_queries):
    send()
    send(to_agent="sales-1")

    with django_assert_num_queries(1):
        assert len(inbox_list(agent_id="sales-1")) == 2


def test_sending_to_a_role_whose_only_agent_is_the_sender_makes_no_receipt(cast, make_agent, send):
    solo = make_agent("solo-1", "solo")

    body = send(by=solo, to_role="solo")

    assert Receipt.objects.filter(entry_id=body["id"]).count() == 0
    assert [event.seq for event in events_of("context.sent", body["id"])] == [body["seq"]]


def test_an_unknown_role_is_reported_with_the_other_field_errors(cast):
    body = {"to_role": "nobody-has-this", "context_type": "has spaces", "content": {}}

    error = error_of(cast.sender.client.post("/api/v1/contexts/", body, format="json"), 400)

    assert set(error["details"]) == {"to_role", "context_type"}
    assert error["message"].startswith("to_role:")
    assert entry_count() == 0


def test_an_unknown_addressee_wins_over_a_too_large_content(cast, settings):
    settings.MEMORYHUB_MAX_CONTENT_BYTES = 50
    body = {"to_agent": "ghost", "context_type": "note", "content": {"text": "x" * 100}}

    error = error_of(cast.sender.client.post("/api/v1/contexts/", body, format="json"), 400)

    assert error["details"] == {"to_agent": ["no agent 'ghost'"]}
    assert entry_count() == 0


def test_an_unknown_addressee_wins_over_an_invisible_reply_to(cast):
    body = {"to_role": "nobody-has-this", "context_type": "note", "content": {}, "reply_to": 999999}

    error = error_of(cast.sender.client.post("/api/v1/contexts/", body, format="json"), 400)

    assert set(error["details"]) == {"to_role"}
    assert entry_count() == 0
    assert Receipt.objects.count() == 0
    assert events_of("context.sent") == []


def test_bulk_ack_answers_with_the_stored_receipts_and_events(cast, send):
    read_first, fresh, acked = send(), send(), send()
    cast.alice.client.post(f"/api/v1/contexts/{read_first['id']}/read/")
    cast.alice.client.post(f"/api/v1/contexts/{acked['id']}/ack/", {"note": "earlier"}, format="json")
    ids = [read_first["id"], fresh["id"], acked["id"]]

    body = cast.alice.client.post("/api/v1/inbox/ack/", {"ids": ids, "note": "batch"}, format="json").json()

    stored = [receipt_to_dict(Receipt.objects.get(entry_id=i, agent_id="sales-1")) for i in ids]
    assert body["results"] == stored
    assert [r["ack_note"] for r in stored] == ["batch", "batch", "earlier"]
    assert stored[0]["read_at"] < stored[0]["acked_at"]  # the first read kept
    assert stored[1]["read_at"] == stored[1]["acked_at"]
    events = [events_of("context.acked", i)[-1] for i in ids[:2]]
    assert [event.seq for event in events] == body["seqs"]
    assert [event.after for event in events] == stored[:2]
    assert [event.audience for event in events] == [["agent:support-1", "agent:sales-1"]] * 2
    assert [event.summary for event in events] == [f"sales-1 acked #{i} from support-1" for i in ids[:2]]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plan")
def test_inbox_query_looks_each_entry_up_by_primary_key(cast, send):
    for _ in range(3):
        send()
    sql, params = inbox_query(
        agent_id="sales-1", state="unread", context_type="escalation", since=0, limit=100, now=timezone.now()
    )

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_nestloop = off")  # even when a join looks cheaper
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Nested Loop" in plan, plan
    assert "Merge Join" not in plan and "Hash Join" not in plan, plan
    assert "contexts_contextentry_pkey" in plan, plan
