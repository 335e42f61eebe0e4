"""A lease past its expiry is free at once; a sweeper records `lock.expired` for the rest."""

from datetime import timedelta

import pytest
from django.utils import timezone

from memoryhub.events.models import Event
from memoryhub.locks.models import Lease, LockResource
from memoryhub.locks.services import leases_expire

from .conftest import lapse, lock

pytestmark = pytest.mark.django_db


def test_a_lapsed_lease_is_taken_over_at_once_with_a_higher_token(inventory, orders):
    crashed = lock(inventory, ["pricing-table"], ttl=30).json()
    lapse(crashed["id"])
    response = lock(orders, ["pricing-table"])
    assert response.status_code == 201, response.content
    takeover = response.json()
    assert takeover["fencing_token"] > crashed["fencing_token"]
    old = Lease.objects.get(id=crashed["id"])
    assert old.release_reason == "expired" and old.released_at is not None
    expired = Event.objects.get(type="lock.expired")
    assert expired.actor_kind == "system"
    assert expired.before["lease_id"] == crashed["id"]
    assert expired.seq < takeover["seq"]
    assert LockResource.objects.get(name="pricing-table").expired_count == 1


def test_the_sweeper_records_each_expiry_once(inventory, orders):
    first = lock(inventory, ["a", "b"]).json()
    lock(orders, ["c"])
    lapse(first["id"])
    assert leases_expire() == 1
    assert leases_expire() == 0
    event = Event.objects.get(type="lock.expired")
    assert (event.resource, event.before["resources"]) == ("", ["a", "b"])
    assert "agent:inventory-1" in event.audience
    assert Lease.objects.get(id=first["id"]).release_reason == "expired"
    assert {row.name: row.expired_count for row in LockResource.objects.all()} == {"a": 1, "b": 1, "c": 0}


def test_the_sweeper_leaves_live_leases_alone(inventory):
    lock(inventory, ["a"], ttl=60)
    assert leases_expire(now=timezone.now() + timedelta(seconds=30)) == 0
    assert leases_expire(now=timezone.now() + timedelta(seconds=61)) == 1


def test_an_expired_lease_no_longer_appears_in_the_list(inventory):
    lease = lock(inventory, ["a"]).json()
    lapse(lease["id"])
    assert inventory.client.get("/api/v1/locks/").json()["results"] == []
    assert inventory.client.get(f"/api/v1/locks/{lease['id']}/").json()["active"] is False


def test_a_refused_attempt_records_the_expiry_it_found_as_the_system_s_not_the_caller_s(inventory, orders, docs):
    # The expiry is housekeeping the attempt happened upon: it must not carry the caller's
    # Idempotency-Key (a key names the caller's own change, and here the caller changed nothing).
    crashed = lock(inventory, ["a"]).json()
    lock(docs, ["b"])
    lapse(crashed["id"])
    refused = lock(orders, ["a", "b"], key="orders-try-1")
    assert refused.status_code == 409, refused.content
    expired = Event.objects.get(type="lock.expired")
    assert (expired.actor_kind, expired.idempotency_key) == ("system", "")
    assert Lease.objects.get(id=crashed["id"]).release_reason == "expired"
