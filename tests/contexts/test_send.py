"""POST contexts/: direction, receipts per recipient, the context.sent event, validation."""

from __future__ import annotations

import pytest

from contexts.models import ContextEntry, Receipt
from contexts.services import context_send
from memoryhub.errors import Invalid

from .conftest import entry_count, events_of


def test_entry_to_a_role_gets_one_receipt_per_agent_of_the_role(cast, send):
    body = send(context_type="escalation", subject="customer:acme", requires_ack=True)

    assert body["from_agent"] == "support-1"
    assert body["from_role"] == "support"
    assert body["sender"] == "support-1"
    assert body["to_role"] == "sales"
    assert body["to_agent"] is None
    assert body["namespace"] == "inbox:sales"
    assert body["subject"] == "customer:acme"
    assert body["requires_ack"] is True
    assert body["content"] == {"customer": "acme", "status": "at_risk"}
    assert isinstance(body["seq"], int)
    receipts = Receipt.objects.filter(entry_id=body["id"]).order_by("agent_id")
    assert [(r.agent_id, r.read_at, r.acked_at) for r in receipts] == [
        ("sales-1", None, None),
        ("sales-2", None, None),
    ]


def test_send_appends_one_context_sent_event_with_the_entry_and_its_audience(cast, send):
    body = send()

    [event] = events_of("context.sent", body["id"])
    assert event.seq == body["seq"]
    assert event.namespace == "inbox:sales"
    assert event.actor_id == "support-1"
    assert event.audience == ["agent:support-1", "role:sales"]
    assert event.after == {key: value for key, value in body.items() if key != "seq"}


def test_entry_to_one_agent_has_only_that_agents_receipt(cast, send):
    body = send(to_agent="sales-2")

    assert body["to_role"] is None
    assert body["to_agent"] == "sales-2"
    assert body["namespace"] == "inbox:agent:sales-2"
    assert list(Receipt.objects.filter(entry_id=body["id"]).values_list("agent_id", flat=True)) == ["sales-2"]
    assert events_of("context.sent", body["id"])[0].audience == ["agent:support-1", "agent:sales-2"]


def test_sender_gets_no_receipt_for_an_entry_to_its_own_role(cast, make_agent, send):
    make_agent("sales-3", "sales")
    body = send(by=cast.alice, to_role="sales")

    agents = set(Receipt.objects.filter(entry_id=body["id"]).values_list("agent_id", flat=True))
    assert agents == {"sales-2", "sales-3"}


def test_agent_joining_a_role_later_does_not_inherit_older_entries(cast, make_agent, send):
    body = send()
    late = make_agent("sales-9", "sales")

    assert late.client.get("/api/v1/inbox/").json()["results"] == []
    # It may see the entry (addressed to its role) but it is not a recipient.
    assert late.client.get(f"/api/v1/contexts/{body['id']}/").status_code == 200
    assert late.client.post(f"/api/v1/contexts/{body['id']}/ack/", {}, format="json").status_code == 403


@pytest.mark.parametrize("forged", ["from_role", "from_agent", "sender"])
def test_a_forged_sender_field_is_rejected_and_nothing_is_written(cast, forged):
    body = {"to_role": "sales", "context_type": "note", "content": {}, forged: "support"}

    response = cast.outsider.client.post("/api/v1/contexts/", body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert forged in error["details"]
    assert entry_count() == 0
    assert Receipt.objects.count() == 0
    assert events_of("context.sent") == []


def test_humans_may_send_and_are_named_as_the_sender(cast, human):
    response = human.post(
        "/api/v1/contexts/", {"to_role": "sales", "context_type": "note", "content": {"x": 1}}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["from_agent"] is None
    assert body["from_role"] == "human"
    assert body["sender"] == "human:alice"
    assert Receipt.objects.filter(entry_id=body["id"]).count() == 2
    assert events_of("context.sent", body["id"])[0].audience == ["role:sales"]


def test_ttl_sets_expires_at(cast, send):
    body = send(ttl_seconds=60)
    entry = ContextEntry.objects.get(id=body["id"])

    assert (entry.expires_at - entry.created_at).total_seconds() == 60
    assert body["expires_at"] is not None


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"context_type": "note", "content": {}}, "to_role"),
        ({"to_role": "sales", "to_agent": "sales-1", "context_type": "note", "content": {}}, "to_agent"),
        ({"to_role": "nobody-has-this", "context_type": "note", "content": {}}, "to_role"),
        ({"to_agent": "ghost", "context_type": "note", "content": {}}, "to_agent"),
        ({"to_agent": "support-1", "context_type": "note", "content": {}}, "to_agent"),
        ({"to_role": "sales", "content": {}}, "context_type"),
        ({"to_role": "sales", "context_type": "has spaces", "content": {}}, "context_type"),
        ({"to_role": "sales", "context_type": "note", "content": [1, 2]}, "content"),
        ({"to_role": "sales", "context_type": "note", "content": "text"}, "content"),
        ({"to_role": "sales", "context_type": "note"}, "content"),
        ({"to_role": "sales", "context_type": "note", "content": {}, "ttl_seconds": 0}, "ttl_seconds"),
        ({"to_role": "sales", "context_type": "note", "content": {}, "ttl_seconds": "soon"}, "ttl_seconds"),
        ({"to_role": "sales", "context_type": "note", "content": {}, "reply_to": "x"}, "reply_to"),
        ({"to_role": "sales", "context_type": "note", "content": {}, "reply_to": 10**30}, "reply_to"),
        ({"to_role": "sales", "context_type": "note", "content": {}, "reply_to": 999999}, "reply_to"),
        ({"to_role": "sales", "context_type": "note", "content": {}, "subject": "s" * 601}, "subject"),
    ],
)
def test_invalid_sends_are_400_in_the_error_shape_and_write_nothing(cast, body, field):
    error = error_of(cast.sender.client.post("/api/v1/contexts/", body, format="json"), 400)

    assert error["code"] == "invalid"
    assert field in error["details"], error
    assert entry_count() == 0


def test_a_body_that_is_not_an_object_is_400(cast):
    assert error_of(cast.sender.client.post("/api/v1/contexts/", [1], format="json"), 400)["code"] == "invalid"


def test_malformed_json_is_400(cast):
    response = cast.sender.client.post("/api/v1/contexts/", "{nope", content_type="application/json")
    assert error_of(response, 400)["code"] == "malformed_json"


def test_content_over_the_default_limit_is_413(cast, settings):
    settings.MEMORYHUB_MAX_CONTENT_BYTES = 50
    body = {"to_role": "sales", "context_type": "note", "content": {"text": "x" * 100}}

    error = error_of(cast.sender.client.post("/api/v1/contexts/", body, format="json"), 413)

    assert error["code"] == "too_large"
    assert error["details"]["limit"] == 50
    assert entry_count() == 0


def test_content_over_the_namespace_policy_limit_is_413(cast):
    from memoryhub.actors import SYSTEM
    from policies.services import policies_apply
    from tests.conftest import TEST_POLICIES

    policies_apply(
        actor=SYSTEM,
        document={
            **TEST_POLICIES,
            "namespaces": [
                *TEST_POLICIES["namespaces"],
                {"pattern": "inbox:sales", "readers": ["lead"], "writers": [], "max_content_bytes": 30},
            ],
        },
    )
    body = {"to_role": "sales", "context_type": "note", "content": {"text": "x" * 40}}

    assert error_of(cast.sender.client.post("/api/v1/contexts/", body, format="json"), 413)["details"]["limit"] == 30
    body["to_role"] = "docs"
    assert cast.sender.client.post("/api/v1/contexts/", body, format="json").status_code == 201


def test_service_checks_the_same_rules_without_the_api(cast):
    with pytest.raises(Invalid) as caught:
        context_send(actor=cast.sender.actor, to_role="sales", context_type="note", content=["not", "an", "object"])
    assert "content" in caught.value.details
    assert entry_count() == 0


def test_reply_threads_keep_the_id_of_their_first_entry(cast, send):
    first = send(to_role="sales")
    reply = send(by=cast.alice, to_role="support", reply_to=first["id"], context_type="answer")
    again = send(by=cast.sender, to_agent="sales-1", reply_to=reply["id"], context_type="answer")

    assert first["thread_id"] is None
    assert (reply["reply_to"], reply["thread_id"]) == (first["id"], first["id"])
    assert (again["reply_to"], again["thread_id"]) == (reply["id"], first["id"])
    thread = cast.sender.client.get(f"/api/v1/contexts/?thread={first['id']}").json()["results"]
    assert [e["id"] for e in thread] == [first["id"], reply["id"], again["id"]]


def test_replying_to_an_entry_the_caller_may_not_see_is_refused(cast, send):
    private = send(to_agent="sales-1")

    response = cast.outsider.client.post(
        "/api/v1/contexts/",
        {"to_role": "sales", "context_type": "note", "content": {}, "reply_to": private["id"]},
        format="json",
    )

    assert error_of(response, 400)["details"] == {"reply_to": ["no such entry"]}
    assert entry_count() == 1


def test_unauthenticated_send_is_401(cast):
    from rest_framework.test import APIClient

    response = APIClient().post("/api/v1/contexts/", {"to_role": "sales"}, format="json")
    assert error_of(response, 401)["code"] == "unauthenticated"


def test_idempotency_key_replays_the_first_send(cast):
    body = {"to_role": "sales", "context_type": "note", "content": {"n": 1}}
    first = cast.sender.client.post("/api/v1/contexts/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = cast.sender.client.post("/api/v1/contexts/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert entry_count() == 1
    assert Receipt.objects.count() == 2
