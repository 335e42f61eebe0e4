"""Handing context over through the inbox with HubClient: send, list, read, ack, reply."""

from __future__ import annotations

import pytest

from contexts.models import Receipt as ReceiptRow
from memoryhub.client import Invalid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def test_an_escalation_reaches_the_role_and_is_acked_with_a_note(connect):
    support = connect("support-1", "support")
    sales = connect("sales-1", "sales")

    sent = support.send(
        to_role="sales",
        context_type="escalation",
        content={"customer": "acme", "health": "at_risk"},
        subject="customer:acme",
        requires_ack=True,
    )
    assert sent.seq and sent.from_agent == "support-1" and sent.from_role == "support"

    unread = sales.inbox(state="unread")
    assert [(e.id, e.context_type, e.subject) for e in unread] == [(sent.id, "escalation", "customer:acme")]
    entry = unread[0]
    assert entry.content == {"customer": "acme", "health": "at_risk"}
    assert entry.receipt["read_at"] is None

    read = entry.read()
    assert read.read_at is not None
    assert sales.inbox(state="unread") == []
    assert [e.id for e in sales.inbox(state="unacked")] == [sent.id]

    receipt = entry.ack(note="holding the upsell")
    assert receipt.acked_at and receipt.ack_note == "holding the upsell"
    assert sales.inbox(state="unacked") == []
    assert entry.ack(note="holding the upsell").acked_at == receipt.acked_at  # idempotent
    assert ReceiptRow.objects.get(entry_id=sent.id, agent_id="sales-1").ack_note == "holding the upsell"


def test_a_reply_goes_back_to_the_sender_in_the_same_thread(connect):
    support = connect("support-1", "support")
    sales = connect("sales-1", "sales")
    question = support.send(to_role="sales", context_type="question", content={"q": "renewal date?"})
    [entry] = sales.inbox()
    answer = entry.reply({"a": "March"})
    assert answer.to_agent == "support-1" and answer.reply_to == question.id
    assert [e.content for e in support.inbox()] == [{"a": "March"}]


def test_send_to_one_agent_and_ack_many(connect):
    lead = connect("lead-1", "lead")
    docs = connect("docs-1", "docs")
    ids = [lead.send(to_agent="docs-1", context_type="note", content={"i": i}).id for i in range(3)]
    receipts = docs.ack_many(ids, note="seen")
    assert sorted(r.entry for r in receipts) == ids
    assert docs.inbox(state="unacked") == []


def test_send_needs_exactly_one_recipient(connect):
    sales = connect("sales-1", "sales")
    with pytest.raises(ValueError):
        sales.send(context_type="note", content={})
    with pytest.raises(Invalid):
        sales.send(to_role="support", context_type="note", content={}, ttl=-5)
