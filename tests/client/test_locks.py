"""`with hub.lock(...)`: acquire, heartbeat while held, release on exit; fencing tokens end to end."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from memoryhub.client import Forbidden, LockHeld, StaleFencingToken
from memoryhub.locks.models import Lease as LeaseRow
from memoryhub.locks.models import LockWait
from memoryhub.memories.models import Memory as MemoryRow

from .conftest import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

LOCK = "memory:inventory:sku-1/count"


def lapse(lease_id: int) -> None:
    """The holder stalled past its lease: move the expiry into the past instead of sleeping."""
    LeaseRow.objects.filter(id=lease_id).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_lock_context_writes_with_its_fencing_token_and_releases_on_exit(connect):
    inventory = connect("inventory-1", "inventory")
    orders = connect("orders-1", "orders")

    with inventory.lock(LOCK, ttl=30) as lease:
        inventory.put("inventory:sku-1", "count", {"units": 5}, fencing_token=lease.fencing_token)
        with pytest.raises(LockHeld) as refused:
            orders.acquire(LOCK, ttl=30, wait=0)
        assert [h["agent"] for h in refused.value.holders] == ["inventory-1"]

    assert not LeaseRow.objects.get(id=lease.id).is_active
    taken = orders.acquire(LOCK, ttl=30, wait=0)  # free at once after the exit
    assert taken.fencing_token > lease.fencing_token
    taken.release()


def test_a_waiting_acquirer_gets_the_lock_when_the_holder_exits(connect):
    inventory = connect("inventory-1", "inventory")
    orders = connect("orders-1", "orders")
    granted = []
    with inventory.lock([LOCK, "pricing-table"], ttl=30) as first:
        waiter = threading.Thread(target=lambda: granted.append(orders.acquire(LOCK, ttl=30, wait=20)))
        waiter.start()
        assert eventually(lambda: LockWait.objects.filter(agent_id="orders-1", ended_at=None).exists())
    waiter.join(timeout=30)
    assert granted and granted[0].fencing_token > first.fencing_token
    assert sorted(first.resources) == ["memory:inventory:sku-1/count", "pricing-table"]
    granted[0].release()


def test_heartbeats_keep_a_short_lease_alive_while_held(connect):
    inventory = connect("inventory-1", "inventory")
    orders = connect("orders-1", "orders")
    with inventory.lock(LOCK, ttl=1, heartbeat_every=0.2) as lease:
        held_since = time.monotonic()
        while time.monotonic() - held_since < 2.5:  # well past the 1 s TTL: only heartbeats keep it
            time.sleep(0.25)
            assert LeaseRow.objects.get(id=lease.id).is_active
        with pytest.raises(LockHeld):
            orders.acquire(LOCK, ttl=5, wait=0)
        assert not lease.lost
    assert not LeaseRow.objects.get(id=lease.id).is_active


def test_a_holder_whose_lease_lapsed_is_refused_with_stale_fencing_token(connect):
    inventory = connect("inventory-1", "inventory")
    orders = connect("orders-1", "orders")
    stalled = inventory.acquire(LOCK, ttl=30)
    inventory.put("inventory:sku-1", "count", {"units": 5}, fencing_token=stalled.fencing_token)
    lapse(stalled.id)

    with orders.lock(LOCK, ttl=30) as current:
        assert current.fencing_token > stalled.fencing_token
        orders.put("inventory:sku-1", "count", {"units": 2}, fencing_token=current.fencing_token)

    with pytest.raises(StaleFencingToken) as refused:
        inventory.put("inventory:sku-1", "count", {"units": 4}, fencing_token=stalled.fencing_token)
    assert refused.value.details == {"presented": stalled.fencing_token, "current": current.fencing_token}
    assert MemoryRow.objects.get(namespace="inventory:sku-1", key="count").content == {"units": 2}


def test_a_lease_that_lapses_while_held_is_marked_lost(connect):
    inventory = connect("inventory-1", "inventory")
    with inventory.lock(LOCK, ttl=30, heartbeat_every=0.1) as lease:
        lapse(lease.id)
        assert eventually(lambda: lease.lost)  # the next heartbeat learns it
    # Exiting does not raise; there was nothing left to release.
    assert LeaseRow.objects.get(id=lease.id).release_reason == "expired"


def test_two_processes_of_one_agent_exclude_each_other(connect, hub_url):
    """Issue 12 L9: two clients with the SAME agent token (two processes of one agent) racing for an
    exclusive lock: one holds it at a time and no increment is lost. Re-entry needs the holder token
    the grant returned, which only the client (thread) that acquired has."""
    from memoryhub.client import HubClient

    first = connect("inventory-1", "inventory")
    second = HubClient(hub_url, token=first.persona.token)
    name = "memory:inventory:sku-7/count"
    try:
        with first.lock(name, ttl=30) as lease:
            first.put("inventory:sku-7", "count", {"n": 0}, fencing_token=lease.fencing_token)
            entered, contexts = [], [second.lock(name, ttl=30, wait=20)]
            other = threading.Thread(target=lambda: entered.append(contexts[0].__enter__()))
            other.start()
            # The second process waits for the lock like any other contender (the hub records its
            # wait) instead of re-entering the first one's lease.
            assert eventually(lambda: LockWait.objects.filter(agent_id="inventory-1", ended_at=None).exists())
            assert not entered
            # A nested lock() in the holder's own thread re-enters: same lease, same fencing token.
            with first.lock(name, ttl=30) as inner:
                assert (inner.id, inner.fencing_token, inner.reentered) == (lease.id, lease.fencing_token, True)
            # Nor can the second process release or extend the first one's lease by its id.
            for twin_call in (lambda: second.release(lease.id), lambda: second.heartbeat_lock(lease.id, ttl=60)):
                with pytest.raises(Forbidden):
                    twin_call()
            assert LeaseRow.objects.get(id=lease.id).is_active
        other.join(timeout=30)
        assert entered and entered[0].fencing_token > lease.fencing_token and not entered[0].reentered
        contexts[0].__exit__(None, None, None)  # releases it and stops its heartbeat thread

        inside, most, rounds = [0], [0], 15
        guard = threading.Lock()

        def worker(hub) -> None:
            for _ in range(rounds):
                with hub.lock(name, ttl=30, wait=20) as held:
                    with guard:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    seen = hub.get("inventory:sku-7", "count").content["n"]
                    hub.put("inventory:sku-7", "count", {"n": seen + 1}, fencing_token=held.fencing_token)
                    with guard:
                        inside[0] -= 1

        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def run(hub) -> None:
            try:
                start.wait()
                worker(hub)
            except BaseException as exc:  # reported to the test
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(hub,)) for hub in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert most[0] == 1
        assert MemoryRow.objects.get(namespace="inventory:sku-7", key="count").content == {"n": 2 * rounds}
    finally:
        second.close()
