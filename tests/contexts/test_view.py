"""GET contexts/{id}/ and GET contexts/: who may see an entry, with which receipts."""

from __future__ import annotations

from django.utils import timezone


def test_entry_detail_shows_every_recipients_receipt(cast, send):
    entry = send()
    cast.bob.client.post(f"/api/v1/contexts/{entry['id']}/ack/", {"note": "seen"}, format="json")

    body = cast.sender.client.get(f"/api/v1/contexts/{entry['id']}/").json()

    assert body["id"] == entry["id"]
    assert [(r["agent"], r["acked_at"] is not None, r["ack_note"]) for r in body["receipts"]] == [
        ("sales-1", False, ""),
        ("sales-2", True, "seen"),
    ]


def test_sender_recipients_lead_and_humans_see_the_entry_the_outsider_gets_404(cast, send, human):
    entry = send()
    url = f"/api/v1/contexts/{entry['id']}/"

    for client in (cast.sender.client, cast.alice.client, cast.bob.client, cast.lead.client, human):
        assert client.get(url).status_code == 200
    response = cast.outsider.client.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    # Absent and invisible look the same.
    assert cast.outsider.client.get("/api/v1/contexts/999999/").json() == {
        "error": {"code": "not_found", "message": "no context entry 999999", "details": {}}
    }
    assert response.json()["error"]["message"] == f"no context entry {entry['id']}"


def test_direct_entries_are_hidden_from_the_rest_of_the_role(cast, send):
    entry = send(to_agent="sales-1")

    assert cast.alice.client.get(f"/api/v1/contexts/{entry['id']}/").status_code == 200
    assert cast.bob.client.get(f"/api/v1/contexts/{entry['id']}/").status_code == 404
    assert cast.lead.client.get(f"/api/v1/contexts/{entry['id']}/").status_code == 200


def test_expired_entries_stay_in_the_log(cast, send):
    from contexts.models import ContextEntry

    entry = send(ttl_seconds=5)
    ContextEntry.objects.filter(id=entry["id"]).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))

    assert cast.alice.client.get(f"/api/v1/contexts/{entry['id']}/").status_code == 200
    assert [e["id"] for e in cast.sender.client.get("/api/v1/contexts/").json()["results"]] == [entry["id"]]


def listed(client, **params) -> list[int]:
    response = client.get("/api/v1/contexts/", params)
    assert response.status_code == 200, response.json()
    return [e["id"] for e in response.json()["results"]]


def test_list_shows_only_entries_the_caller_may_see(cast, send, human):
    to_sales = send()
    to_alice = send(to_agent="sales-1")
    to_docs = send(to_role="docs")
    from_docs = send(by=cast.outsider, to_role="support")

    everything = [to_sales["id"], to_alice["id"], to_docs["id"], from_docs["id"]]
    assert listed(human) == everything
    assert listed(cast.lead.client) == everything
    assert listed(cast.sender.client) == everything  # sent three, received the fourth (its role)
    assert listed(cast.alice.client) == [to_sales["id"], to_alice["id"]]
    assert listed(cast.bob.client) == [to_sales["id"]]
    assert listed(cast.outsider.client) == [to_docs["id"], from_docs["id"]]


def test_list_filters_by_direction_and_type(cast, send):
    a = send(context_type="escalation")
    b = send(to_role="docs", context_type="handoff")
    c = send(by=cast.alice, to_role="support", context_type="handoff")

    assert listed(cast.lead.client, from_role="support") == [a["id"], b["id"]]
    assert listed(cast.lead.client, from_role="support", to_role="docs") == [b["id"]]
    assert listed(cast.lead.client, context_type="handoff") == [b["id"], c["id"]]
    assert listed(cast.lead.client, from_agent="sales-1") == [c["id"]]
    assert listed(cast.lead.client, since=a["id"], limit=1) == [b["id"]]


def test_list_carries_receipt_counts(cast, send):
    entry = send()
    cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/read/")
    cast.bob.client.post(f"/api/v1/contexts/{entry['id']}/ack/", {}, format="json")

    [item] = cast.sender.client.get("/api/v1/contexts/").json()["results"]
    assert item["receipt_counts"] == {"recipients": 2, "read": 2, "acked": 1}


def test_bad_list_parameters_are_400(cast):
    for params in ({"since": "x"}, {"limit": "many"}, {"thread": "t"}):
        response = cast.alice.client.get("/api/v1/contexts/", params)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"
