"""contexts_expire: the sweeper records expiry once, with one context.expired event per entry."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from contexts.models import ContextEntry, Receipt
from contexts.services import contexts_expire

from .conftest import events_of


def test_expired_entry_leaves_the_inbox_and_the_sweep_writes_one_event(cast, send):
    gone = send(ttl_seconds=60, requires_ack=True)
    kept = send(ttl_seconds=3600)
    forever = send()
    now = timezone.now() + timedelta(seconds=61)

    assert contexts_expire(now=now) == 1
    assert contexts_expire(now=now) == 0

    entry = ContextEntry.objects.get(id=gone["id"])
    assert entry.expired_at == now
    assert set(Receipt.objects.filter(entry_expired=True).values_list("entry_id", flat=True)) == {gone["id"]}
    [event] = events_of("context.expired")
    assert event.resource == f"context:{gone['id']}"
    assert (event.actor_kind, event.actor_id) == ("system", "system")
    assert event.namespace == "inbox:sales"
    assert event.audience == ["agent:support-1", "role:sales"]
    assert event.after["expired_at"] is not None
    # Gone from inboxes (the sweep ran at a future `now`: move the entry's expiry into the past too).
    ContextEntry.objects.filter(id=gone["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    inbox = cast.alice.client.get("/api/v1/inbox/", {"state": "all"}).json()["results"]
    assert [e["id"] for e in inbox] == [kept["id"], forever["id"]]
    # Still in the log.
    detail = cast.alice.client.get(f"/api/v1/contexts/{gone['id']}/").json()
    assert detail["expired_at"] is not None
    assert len(detail["receipts"]) == 2


def test_entries_past_expiry_are_out_of_inboxes_before_the_sweep(cast, send):
    entry = send(ttl_seconds=60)
    ContextEntry.objects.filter(id=entry["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert cast.bob.client.get("/api/v1/inbox/").json()["results"] == []
    assert contexts_expire() == 1
    assert cast.bob.client.get("/api/v1/inbox/").json()["results"] == []


def test_sweep_takes_at_most_limit_entries_per_call(cast, send):
    for _ in range(3):
        send(ttl_seconds=1)
    later = timezone.now() + timedelta(seconds=5)

    assert contexts_expire(now=later, limit=2) == 2
    assert contexts_expire(now=later, limit=2) == 1
    assert len(events_of("context.expired")) == 3


def test_a_late_ack_of_an_expired_entry_is_still_recorded(cast, send):
    entry = send(ttl_seconds=1)
    contexts_expire(now=timezone.now() + timedelta(seconds=5))

    response = cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/ack/", {"note": "late"}, format="json")
    assert response.status_code == 200
    assert response.json()["ack_note"] == "late"


def test_namespace_default_ttl_applies_when_none_is_given(cast, send):
    from memoryhub.actors import SYSTEM
    from policies.services import policies_apply
    from tests.conftest import TEST_POLICIES

    policies_apply(
        actor=SYSTEM,
        document={
            **TEST_POLICIES,
            "namespaces": [
                *TEST_POLICIES["namespaces"],
                {"pattern": "inbox:sales", "readers": ["lead"], "writers": [], "default_ttl_seconds": 120},
            ],
        },
    )
    defaulted = ContextEntry.objects.get(id=send()["id"])
    explicit = ContextEntry.objects.get(id=send(ttl_seconds=10)["id"])

    assert (defaulted.expires_at - defaulted.created_at).total_seconds() == 120
    assert (explicit.expires_at - explicit.created_at).total_seconds() == 10
