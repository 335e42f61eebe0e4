"""GET inbox/: what each agent sees, in what order, with its own receipt; listing changes nothing."""

from __future__ import annotations

from django.utils import timezone

from contexts.models import ContextEntry, Receipt
from memoryhub.events.models import Event


def inbox(persona, **params) -> list[dict]:
    response = persona.client.get("/api/v1/inbox/", params)
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def ids(items) -> list[int]:
    return [item["id"] for item in items]


def test_two_agents_of_one_role_each_have_their_own_unread_state(cast, send):
    entry = send()

    assert ids(inbox(cast.alice)) == ids(inbox(cast.bob)) == [entry["id"]]
    assert cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/read/").status_code == 200

    assert inbox(cast.alice) == []
    assert ids(inbox(cast.bob)) == [entry["id"]]
    [mine] = inbox(cast.alice, state="all")
    assert mine["receipt"]["agent"] == "sales-1"
    assert mine["receipt"]["read_at"] is not None
    assert inbox(cast.bob, state="all")[0]["receipt"]["read_at"] is None


def test_inbox_items_are_oldest_first_with_the_callers_receipt(cast, send):
    first = send(subject="one")
    second = send(to_agent="sales-1", subject="two")
    third = send(subject="three")

    items = inbox(cast.alice)
    assert ids(items) == [first["id"], second["id"], third["id"]]
    assert items[1]["to_agent"] == "sales-1"
    assert items[0]["receipt"] == {"agent": "sales-1", "read_at": None, "acked_at": None, "ack_note": ""}
    assert ids(inbox(cast.bob)) == [first["id"], third["id"]]


def test_listing_the_inbox_changes_nothing(cast, send):
    send()
    send(to_agent="sales-1")
    before_events = Event.objects.count()
    before_receipts = list(Receipt.objects.order_by("id").values())

    for state in ("unread", "unacked", "all"):
        inbox(cast.alice, state=state)
        inbox(cast.alice, state=state)

    assert Event.objects.count() == before_events
    assert list(Receipt.objects.order_by("id").values()) == before_receipts
    assert len(inbox(cast.alice)) == 2


def test_states_filter_by_the_callers_receipt(cast, send):
    unread = send(subject="unread")
    read = send(subject="read")
    acked = send(subject="acked")
    cast.alice.client.post(f"/api/v1/contexts/{read['id']}/read/")
    cast.alice.client.post(f"/api/v1/contexts/{acked['id']}/ack/", {"note": "done"}, format="json")

    assert ids(inbox(cast.alice)) == [unread["id"]]
    assert ids(inbox(cast.alice, state="unacked")) == [unread["id"], read["id"]]
    assert ids(inbox(cast.alice, state="all")) == [unread["id"], read["id"], acked["id"]]


def test_context_type_since_and_limit(cast, send):
    a = send(context_type="escalation")
    b = send(context_type="handoff")
    c = send(context_type="handoff")

    assert ids(inbox(cast.alice, context_type="handoff")) == [b["id"], c["id"]]
    assert ids(inbox(cast.alice, since=a["id"])) == [b["id"], c["id"]]
    page = cast.alice.client.get("/api/v1/inbox/", {"limit": 2}).json()
    assert ids(page["results"]) == [a["id"], b["id"]]
    assert ids(inbox(cast.alice, since=page["next_since"])) == [c["id"]]


def test_outsider_never_sees_entries_not_addressed_to_it(cast, send):
    send()
    send(to_agent="sales-1")

    assert inbox(cast.outsider, state="all") == []
    assert inbox(cast.sender, state="all") == []  # the sender's inbox holds what it received, not what it sent


def test_expired_entries_leave_the_inbox_at_once(cast, send):
    gone = send(ttl_seconds=60)
    kept = send()
    ContextEntry.objects.filter(id=gone["id"]).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))

    assert ids(inbox(cast.alice)) == [kept["id"]]
    assert ids(inbox(cast.alice, state="all")) == [kept["id"]]


def test_bad_inbox_parameters_are_400(cast):
    for params in ({"state": "new"}, {"since": "x"}, {"limit": 0}, {"limit": 10_000}, {"since": 10**30}):
        response = cast.alice.client.get("/api/v1/inbox/", params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "invalid"


def test_humans_look_at_an_agents_inbox_by_naming_it(cast, send, human):
    entry = send()

    response = human.get("/api/v1/inbox/", {"agent": "sales-2"})
    assert response.status_code == 200
    assert ids(response.json()["results"]) == [entry["id"]]
    assert human.get("/api/v1/inbox/").status_code == 400
    assert human.get("/api/v1/inbox/", {"agent": "ghost"}).status_code == 404


def test_agents_may_not_read_another_agents_inbox(cast, send):
    send()
    response = cast.alice.client.get("/api/v1/inbox/", {"agent": "sales-2"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert cast.alice.client.get("/api/v1/inbox/", {"agent": "sales-1"}).status_code == 200
