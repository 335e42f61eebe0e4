"""POST contexts/{id}/read/, contexts/{id}/ack/ and inbox/ack/: idempotent, per recipient, all or nothing."""

from __future__ import annotations

import pytest

from contexts.models import Receipt
from contexts.services import context_ack, context_read, contexts_ack_bulk
from memoryhub.errors import Forbidden, NotFound
from memoryhub.events.models import Event

from .conftest import events_of


def receipt(entry_id: int, agent_id: str) -> Receipt:
    return Receipt.objects.get(entry_id=entry_id, agent_id=agent_id)


def test_read_is_idempotent_one_event_only(cast, send):
    entry = send()
    url = f"/api/v1/contexts/{entry['id']}/read/"

    first = cast.alice.client.post(url)
    second = cast.alice.client.post(url)

    assert first.status_code == second.status_code == 200
    assert isinstance(first.json()["seq"], int)
    assert second.json()["seq"] is None
    assert second.json()["read_at"] == first.json()["read_at"] is not None
    [event] = events_of("context.read", entry["id"])
    assert event.seq == first.json()["seq"]
    assert event.actor_id == "sales-1"
    assert event.after["agent"] == "sales-1"
    assert event.audience == ["agent:support-1", "agent:sales-1"]
    assert receipt(entry["id"], "sales-2").read_at is None


def test_ack_is_idempotent_keeps_the_first_note_and_marks_read(cast, send):
    entry = send(requires_ack=True)
    url = f"/api/v1/contexts/{entry['id']}/ack/"

    first = cast.alice.client.post(url, {"note": "on it"}, format="json")
    second = cast.alice.client.post(url, {"note": "changed my mind"}, format="json")

    assert first.status_code == second.status_code == 200
    body = first.json()
    assert body["acked_at"] is not None and body["read_at"] is not None
    assert body["ack_note"] == "on it"
    assert second.json()["ack_note"] == "on it"
    assert second.json()["seq"] is None
    [event] = events_of("context.acked", entry["id"])
    assert event.reason == "on it"
    assert events_of("context.read", entry["id"]) == []
    # A read after the ack changes nothing either.
    assert cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/read/").json()["seq"] is None


def test_ack_after_read_keeps_the_first_read_time(cast, send):
    entry = send()
    read = cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/read/").json()
    acked = cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/ack/", {}, format="json").json()

    assert acked["read_at"] == read["read_at"]
    assert acked["acked_at"] >= read["read_at"]


def test_a_caller_who_sees_the_entry_but_is_not_a_recipient_gets_403(cast, send, human):
    entry = send()

    for client in (cast.sender.client, cast.lead.client, human):
        response = client.post(f"/api/v1/contexts/{entry['id']}/ack/", {}, format="json")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert client.post(f"/api/v1/contexts/{entry['id']}/read/").status_code == 403
    assert events_of("context.acked") == events_of("context.read") == []


def test_a_caller_who_may_not_see_the_entry_gets_404(cast, send):
    entry = send(to_agent="sales-1")

    for persona in (cast.outsider, cast.bob):
        assert persona.client.post(f"/api/v1/contexts/{entry['id']}/read/").status_code == 404
        assert persona.client.post(f"/api/v1/contexts/{entry['id']}/ack/", {}, format="json").status_code == 404
    assert cast.outsider.client.post("/api/v1/contexts/999999/read/").status_code == 404
    assert cast.outsider.client.post(f"/api/v1/contexts/{10**30}/read/").status_code == 404


def test_a_human_may_ack_on_behalf_of_a_recipient(cast, send, human):
    entry = send(requires_ack=True)

    response = human.post(
        f"/api/v1/contexts/{entry['id']}/ack/", {"note": "handled by phone", "on_behalf_of": "sales-2"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["agent"] == "sales-2"
    assert receipt(entry["id"], "sales-2").ack_note == "handled by phone"
    assert receipt(entry["id"], "sales-1").acked_at is None
    [event] = events_of("context.acked", entry["id"])
    assert (event.actor_kind, event.actor_id) == ("human", "alice")
    assert event.after["agent"] == "sales-2"
    assert event.audience == ["agent:support-1", "agent:sales-2"]


def test_on_behalf_of_a_non_recipient_is_403_and_agents_may_not_use_it(cast, send, human):
    entry = send()

    assert (
        human.post(f"/api/v1/contexts/{entry['id']}/ack/", {"on_behalf_of": "docs-1"}, format="json").status_code == 403
    )
    response = cast.alice.client.post(
        f"/api/v1/contexts/{entry['id']}/ack/", {"on_behalf_of": "sales-2"}, format="json"
    )
    assert response.status_code == 403
    assert receipt(entry["id"], "sales-2").acked_at is None


def test_read_takes_no_body_fields(cast, send):
    entry = send()
    response = cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/read/", {"agent": "sales-2"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"agent": ["Unknown field."]}


def test_services_raise_the_same_errors(cast, send):
    entry = send()

    with pytest.raises(NotFound):
        context_read(actor=cast.outsider.actor, entry_id=entry["id"])
    with pytest.raises(Forbidden):
        context_ack(actor=cast.sender.actor, entry_id=entry["id"])
    receipt_row, event = context_ack(actor=cast.alice.actor, entry_id=entry["id"], note="ok")
    assert event is not None and receipt_row.acked_at is not None
    assert context_ack(actor=cast.alice.actor, entry_id=entry["id"], note="ok")[1] is None


def test_bulk_ack_acks_every_listed_entry_with_one_event_each(cast, send):
    a, b, c = send(), send(to_agent="sales-1"), send()
    cast.alice.client.post(f"/api/v1/contexts/{a['id']}/ack/", {}, format="json")

    response = cast.alice.client.post(
        "/api/v1/inbox/ack/", {"ids": [a["id"], b["id"], c["id"], b["id"]], "note": "batch"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert [r["entry"] for r in body["results"]] == [a["id"], b["id"], c["id"]]
    assert all(r["acked_at"] for r in body["results"])
    assert [r["ack_note"] for r in body["results"]] == ["", "batch", "batch"]
    assert len(body["seqs"]) == 2 and body["seq"] == body["seqs"][-1]
    assert len(events_of("context.acked")) == 3
    assert cast.alice.client.get("/api/v1/inbox/", {"state": "unacked"}).json()["results"] == []
    assert receipt(c["id"], "sales-2").acked_at is None


def test_bulk_ack_is_all_or_nothing(cast, send):
    mine = send(to_agent="sales-1")
    role = send()
    not_mine = send(to_agent="sales-2")
    before = Event.objects.count()

    response = cast.alice.client.post(
        "/api/v1/inbox/ack/", {"ids": [mine["id"], role["id"], not_mine["id"], 999999]}, format="json"
    )

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["details"]["missing"] == [not_mine["id"], 999999]
    assert Receipt.objects.filter(acked_at__isnull=False).count() == 0
    assert Event.objects.count() == before


@pytest.mark.parametrize(
    "body", [{}, {"ids": []}, {"ids": ["a"]}, {"ids": 5}, {"ids": [1], "from_agent": "x"}, {"ids": [0]}]
)
def test_bulk_ack_validation(cast, body):
    response = cast.alice.client.post("/api/v1/inbox/ack/", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_bulk_ack_by_a_human_needs_on_behalf_of(cast, send, human):
    entry = send()

    assert human.post("/api/v1/inbox/ack/", {"ids": [entry["id"]]}, format="json").status_code == 400
    response = human.post("/api/v1/inbox/ack/", {"ids": [entry["id"]], "on_behalf_of": "sales-1"}, format="json")
    assert response.status_code == 200
    assert receipt(entry["id"], "sales-1").acked_at is not None
    with pytest.raises(Forbidden):
        contexts_ack_bulk(actor=cast.bob.actor, ids=[entry["id"]], on_behalf_of="sales-1")
