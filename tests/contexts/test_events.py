"""Inbox events in the log: who sees them through GET events/ (audience + namespace policy)."""

from __future__ import annotations


def seen(persona, **params) -> list[tuple[str, str]]:
    response = persona.client.get("/api/v1/events/", {"type": "context.*", **params})
    assert response.status_code == 200
    return [(e["type"], e["resource"]) for e in response.json()["results"]]


def test_event_visibility_follows_the_entrys_direction(cast, send):
    entry = send()
    resource = f"context:{entry['id']}"
    cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/ack/", {}, format="json")

    sent, acked = ("context.sent", resource), ("context.acked", resource)
    assert seen(cast.sender) == [sent, acked]
    assert seen(cast.alice) == [sent, acked]
    assert seen(cast.bob) == [sent]  # addressed to its role; alice's ack is hers and the sender's
    assert seen(cast.lead) == [sent, acked]  # inbox:* is readable by lead
    assert seen(cast.outsider) == []


def test_sent_event_carries_the_entry_as_the_api_returns_it(cast, send):
    entry = send(to_agent="sales-2", subject="customer:acme")

    [event] = cast.bob.client.get("/api/v1/events/", {"type": "context.sent"}).json()["results"]
    assert event["seq"] == entry["seq"]
    assert event["after"] == {k: v for k, v in entry.items() if k != "seq"}
    assert event["actor"] == {"kind": "agent", "id": "support-1", "role": "support"}
