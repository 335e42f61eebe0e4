"""`alert.lock_wait`: once per lease held past twice its ttl, once per wait past twice its expected
duration (SCENARIO 6: an alert fires when a wait passes twice the expected time)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from memoryhub.events.models import Event
from memoryhub.locks.models import Lease, LockWait
from memoryhub.locks.services import lock_alerts_raise

from .conftest import lock, release

pytestmark = pytest.mark.django_db


def test_a_lease_held_past_twice_its_ttl_raises_one_alert(inventory):
    lease = lock(inventory, ["pricing-table"], ttl=30).json()
    assert lock_alerts_raise() == 0
    # Kept alive by heartbeats for 61 s: still active, held longer than twice its 30 s ttl.
    now = timezone.now()
    Lease.objects.filter(id=lease["id"]).update(
        acquired_at=now - timedelta(seconds=61), expires_at=now + timedelta(seconds=20)
    )
    assert lock_alerts_raise() == 1
    assert lock_alerts_raise() == 0
    alert = Event.objects.get(type="alert.lock_wait")
    assert alert.actor_kind == "system"
    assert alert.after["kind"] == "held_too_long" and alert.after["lease_id"] == lease["id"]
    assert "agent:inventory-1" in alert.audience


def test_a_released_or_expired_lease_raises_no_alert(inventory):
    lapsed = lock(inventory, ["pricing-table"], ttl=30).json()
    released = lock(inventory, ["ledger"], ttl=30).json()
    assert release(inventory, released).status_code == 200
    now = timezone.now()
    Lease.objects.filter(id=lapsed["id"]).update(
        acquired_at=now - timedelta(seconds=120), expires_at=now - timedelta(seconds=90)
    )
    Lease.objects.filter(id=released["id"]).update(acquired_at=now - timedelta(seconds=120))
    assert lock_alerts_raise() == 0  # neither is held any more


def test_a_wait_past_twice_its_expected_duration_raises_one_alert(orders):
    now = timezone.now()
    # Began 25 s ago behind a lease due to expire 5 s later; still waiting (the holder heartbeats).
    wait = LockWait.objects.create(
        agent=orders.agent,
        mode="exclusive",
        resources=["pricing-table"],
        blocked_by=[1],
        started_at=now - timedelta(seconds=25),
        expected_until=now - timedelta(seconds=20),
        deadline=now + timedelta(seconds=5),
    )
    short = LockWait.objects.create(
        agent=orders.agent,
        mode="exclusive",
        resources=["other"],
        started_at=now - timedelta(seconds=5),
        expected_until=now,
        deadline=now + timedelta(seconds=25),
    )
    assert lock_alerts_raise() == 1
    assert lock_alerts_raise() == 0
    alert = Event.objects.get(type="alert.lock_wait")
    assert alert.after["kind"] == "waited_too_long" and alert.after["wait_id"] == wait.id
    assert alert.after["expected_seconds"] == 5.0
    assert LockWait.objects.get(id=short.id).alerted_at is None
