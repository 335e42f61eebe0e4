"""/inbox/: entries by role and agent with every receipt, the backlog per role, and acking on behalf of
an agent (the receipt is acked; the event names the human and carries the note as its reason)."""

from contexts.models import Receipt
from contexts.services import context_read, context_send

from .conftest import last_event, messages_of


def escalate(support, **extra):
    entry, _ = context_send(
        actor=support.actor,
        to_role="sales",
        context_type="escalation",
        subject="customer:acme",
        content={"summary": "at risk"},
        requires_ack=True,
        **extra,
    )
    return entry


def test_inbox_shows_entries_with_every_recipients_receipt(staff, support, sales, make_agent):
    make_agent("sales-2", "sales")
    entry = escalate(support)
    context_read(actor=sales.actor, entry_id=entry.id)
    response = staff.get("/inbox/")
    [item] = response.context["entries"]
    assert item["entry"].id == entry.id
    receipts = {receipt.agent_id: receipt for receipt in item["receipts"]}
    assert set(receipts) == {"sales-1", "sales-2"}
    assert receipts["sales-1"].read_at is not None and receipts["sales-2"].read_at is None
    backlog = {row["role"]: row for row in response.context["backlog"]}
    assert backlog["sales"]["unread"] == 1 and backlog["sales"]["awaiting_ack"] == 2


def test_inbox_filters_by_role_agent_and_state(staff, support, sales, docs, make_agent):
    make_agent("sales-2", "sales")
    to_sales = escalate(support)
    to_docs, _ = context_send(actor=support.actor, to_agent="docs-1", context_type="fyi", content={"a": 1})
    context_read(actor=sales.actor, entry_id=to_sales.id)

    def ids(query):
        return [item["entry"].id for item in staff.get("/inbox/" + query).context["entries"]]

    assert ids("") == [to_docs.id, to_sales.id]
    assert ids("?to_role=sales") == [to_sales.id]
    assert ids("?to_role=docs") == [to_docs.id]  # sent to one agent of the role
    assert ids("?agent=sales-1&state=unread") == []
    assert ids("?agent=sales-2&state=unread") == [to_sales.id]
    assert ids("?state=unacked") == [to_sales.id]
    assert ids("?context_type=fyi") == [to_docs.id]


def test_ack_on_behalf_is_an_event_with_the_human_and_the_note(staff, support, sales):
    entry = escalate(support)
    response = staff.post(
        f"/inbox/{entry.id}/ack/", {"agent": "sales-1", "note": "handled by phone", "next": "/inbox/?agent=sales-1"}
    )
    assert response.status_code == 303
    assert response["Location"] == "/inbox/?agent=sales-1"
    receipt = Receipt.objects.get(entry=entry, agent_id="sales-1")
    assert receipt.acked_at is not None and receipt.ack_note == "handled by phone"
    event = last_event("context.acked")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "handled by phone")
    assert event.after["agent"] == "sales-1"


def test_ack_on_behalf_of_an_agent_that_is_not_a_recipient_is_refused(staff, support, sales, docs):
    entry = escalate(support)
    response = staff.post(f"/inbox/{entry.id}/ack/", {"agent": "docs-1", "note": "x"})
    assert response.status_code == 403
    assert "docs-1 is not a recipient" in response.content.decode()


def test_acking_twice_changes_nothing(staff, support, sales):
    entry = escalate(support)
    staff.post(f"/inbox/{entry.id}/ack/", {"agent": "sales-1", "note": "first"})
    response = staff.post(f"/inbox/{entry.id}/ack/", {"agent": "sales-1", "note": "second"}, follow=True)
    assert f"#{entry.id} was already acked by sales-1; nothing changed." in messages_of(response)
    assert Receipt.objects.get(entry=entry, agent_id="sales-1").ack_note == "first"


def test_ack_redirect_never_leaves_the_site(staff, support, sales):
    entry = escalate(support)
    response = staff.post(f"/inbox/{entry.id}/ack/", {"agent": "sales-1", "note": "n", "next": "https://evil.example/"})
    assert response["Location"] == "/inbox/"


def test_the_backlog_counts_what_awaits_an_ack_and_leaves_out_lapsed_entries(staff, support, sales):
    from datetime import timedelta

    from django.utils import timezone

    from memoryhub.dashboard.selectors import inbox_backlog

    escalate(support)  # awaits sales-1's ack
    context_send(actor=support.actor, to_role="sales", context_type="note", content={"n": 1})  # no ack wanted
    lapsing = escalate(support, ttl_seconds=60)  # past its expiry, not swept yet
    later = timezone.now() + timedelta(seconds=61)
    [sales_backlog] = inbox_backlog(now=later)
    assert (sales_backlog["unread"], sales_backlog["awaiting_ack"]) == (2, 1)
    assert sales_backlog["oldest"] < lapsing.created_at
    [before] = inbox_backlog()
    assert (before["unread"], before["awaiting_ack"]) == (3, 2)
