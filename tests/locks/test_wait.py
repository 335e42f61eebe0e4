"""wait_seconds: a waiter sleeps until a release commits (or the first blocking lease is due to
expire, or its deadline), without polling the database, and answers 409 after the deadline.

What woke a waiter is told from what the server recorded (its LockWait row, `waited_ms`, the order of
the log), never from how long the test took: the safety re-check is pushed past every deadline here
(`no_recheck`), so a waiter that ends before its deadline was woken by what the test names."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from memoryhub.locks import waiting
from memoryhub.locks.models import Lease, LockResource, LockWait
from memoryhub.locks.waiting import CHANNEL, _parse_payload, notifier

from .conftest import error_of, lock, release, run_threads

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_recheck(monkeypatch):
    """Waiters re-check at least every second in case a wake-up was lost; here they do not, so only
    a release, a hold, the blocking lease's expiry or the deadline can end a wait."""
    monkeypatch.setattr(waiting, "SAFETY_RECHECK_SECONDS", 3600.0)


def client_for(persona) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {persona.token}")
    return client


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "with-idempotency-key"])
def test_a_waiter_is_woken_by_the_release(inventory, orders, idempotent, no_recheck):
    held = lock(inventory, ["pricing-table"], ttl=60).json()
    outcome = {}

    def waiter(_: int) -> None:
        outcome["response"] = lock(
            client_for(orders), ["pricing-table"], ttl=30, wait=20, key="w-1" if idempotent else None
        )

    thread = threading.Thread(target=lambda: run_threads(waiter, 1))
    thread.start()
    wait_until(lambda: LockWait.objects.filter(agent_id="orders-1", ended_at=None).exists())
    queue = orders.client.get("/api/v1/locks/?resource=pricing-table").json()["waiting"]  # its own wait
    assert [(w["agent"], w["blocked_by"]) for w in queue] == [("orders-1", [held["id"]])]

    released = release(inventory, held)
    assert released.status_code == 200
    thread.join(30)

    response = outcome["response"]
    assert response.status_code == 201, response.content
    granted = response.json()
    assert granted["seq"] > released.json()["seq"]  # granted after the release, in the log's order
    # With no re-check and the holder's lease good for 60 s, only the release could end the wait
    # before its 20 s deadline.
    assert 0 < granted["waited_ms"] < 20_000
    wait = LockWait.objects.get(agent_id="orders-1")
    assert (wait.outcome, wait.lease_id) == ("granted", granted["id"])
    assert wait.ended_at < wait.deadline
    row = LockResource.objects.get(name="pricing-table")
    assert (row.acquired_count, row.waited_count, row.denied_count) == (2, 1, 0)
    if idempotent:  # a retry of the same request replays the grant, it does not re-enter
        replay = lock(orders, ["pricing-table"], ttl=30, wait=20, key="w-1")
        assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
        assert replay.json()["id"] == response.json()["id"] and replay.json()["depth"] == 1


def test_a_waiter_gets_409_after_its_deadline_when_nothing_is_released(inventory, orders, no_recheck):
    held = lock(inventory, ["inventory:pricing-table"], ttl=60).json()
    response = lock(orders, ["inventory:pricing-table"], wait=1)
    details = error_of(response, 409, "lock_held")
    assert details["holders"][0]["lease_id"] == held["id"]
    assert details["waited_ms"] >= 1000  # not before its deadline
    wait = LockWait.objects.get(agent_id="orders-1")
    assert wait.outcome == "timeout"
    # ...and at it: not when the holder's lease would have run out (then it would have been granted).
    assert wait.ended_at < Lease.objects.get(id=held["id"]).expires_at
    row = LockResource.objects.get(name="inventory:pricing-table")
    assert (row.waited_count, row.denied_count) == (1, 1)


def test_a_waiter_takes_over_when_the_blocking_lease_expires(inventory, orders, no_recheck):
    # The holder crashed: nobody will release, but its 1 s lease runs out and the waiter wakes then.
    held = lock(inventory, ["pricing-table"], ttl=1).json()
    expired_at = Lease.objects.get(id=held["id"]).expires_at
    response = lock(orders, ["pricing-table"], wait=10)
    assert response.status_code == 201, response.content
    assert response.json()["fencing_token"] > held["fencing_token"]
    wait = LockWait.objects.get(agent_id="orders-1")
    assert wait.outcome == "granted"
    assert wait.ended_at >= expired_at  # not before the lease lapsed...
    assert response.json()["waited_ms"] < 10_000  # ...and woken by its expiry, not by the deadline
    assert Lease.objects.get(id=held["id"]).release_reason == "expired"


def test_waiting_on_a_resource_is_not_disturbed_by_releases_of_others(inventory, orders):
    lock(inventory, ["x"], ttl=60)
    other = lock(inventory, ["y"], ttl=60).json()
    subscription = notifier.subscribe(["x"])
    try:
        subscription.clear()
        release(inventory, other)
        assert subscription.wait(0.2) is False
    finally:
        notifier.unsubscribe(subscription)


def test_a_release_in_another_process_wakes_waiters_through_listen_notify(db):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite waiters re-check every second")
    import psycopg

    subscription = notifier.subscribe(["pricing-table"])
    try:
        assert notifier.listening.wait(5)
        subscription.clear()
        settings_dict = connection.settings_dict
        # Another server process releasing: a separate connection, NOTIFY sent at its commit.
        with psycopg.connect(
            dbname=settings_dict["NAME"],
            user=settings_dict["USER"] or None,
            host=settings_dict["HOST"] or None,
            port=settings_dict["PORT"] or None,
            autocommit=True,
        ) as other:
            other.execute("SELECT pg_notify(%s, %s)", [CHANNEL, '["pricing-table"]'])
        assert subscription.wait(5) is True
    finally:
        notifier.unsubscribe(subscription)


def test_open_waits_past_their_deadline_are_not_listed(inventory, orders):
    now = timezone.now()
    LockWait.objects.create(
        agent=orders.agent,
        mode="exclusive",
        resources=["a"],
        started_at=now - timedelta(seconds=60),
        expected_until=now - timedelta(seconds=50),
        deadline=now - timedelta(seconds=30),
    )
    assert inventory.client.get("/api/v1/locks/").json()["waiting"] == []


def test_a_hold_placed_while_an_agent_waits_refuses_it_with_423(inventory, orders, human, no_recheck):
    lock(inventory, ["pricing-table"], ttl=60)
    outcome = {}

    def waiter(_: int) -> None:
        outcome["response"] = lock(client_for(orders), ["pricing-table"], ttl=30, wait=20)

    thread = threading.Thread(target=lambda: run_threads(waiter, 1))
    thread.start()
    wait_until(lambda: LockWait.objects.filter(agent_id="orders-1", ended_at=None).exists())
    response = human.post("/api/v1/holds/", {"resource": "pricing-table", "reason": "price audit"}, format="json")
    assert response.status_code == 201
    thread.join(30)
    error_of(outcome["response"], 423, "held")
    wait = LockWait.objects.get(agent_id="orders-1")
    assert wait.outcome == "refused"
    assert wait.ended_at < wait.deadline  # woken by the hold, not left waiting out its 20 s


def test_a_release_tells_other_processes_which_resources_it_freed(inventory, orders):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite waiters re-check every second")
    import psycopg

    lease = lock(inventory, ["pricing-table", "catalog"]).json()
    settings_dict = connection.settings_dict
    # Another server process listening, as its waiters' listener thread does.
    with psycopg.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"] or None,
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        autocommit=True,
    ) as other:
        other.execute(f"LISTEN {CHANNEL}")
        error_of(release(orders, lease), 404, "not_found")  # not its to see: nothing announced
        assert release(inventory, lease).status_code == 200
        notes = [_parse_payload(note.payload) for note in other.notifies(timeout=5, stop_after=1)]
        notes += [_parse_payload(note.payload) for note in other.notifies(timeout=0.3)]
    assert notes == [frozenset({"pricing-table", "catalog"})]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time: no interleaving")
def test_a_grant_is_stamped_after_the_release_it_saw_committed(inventory, orders, monkeypatch):
    """The acquirer has the resource rows; the holder's release commits before the acquirer reads the
    holdings. The grant must then start no earlier than that release ended, or the two leases' times
    overlap in the record although they never did."""
    from memoryhub.locks import queries

    first = lock(inventory, ["res:stamp"]).json()
    has_rows, released = threading.Event(), threading.Event()
    real_holdings_of = queries.holdings_of

    def holdings_after_the_release(names):
        if threading.current_thread() is not threading.main_thread() and not has_rows.is_set():
            has_rows.set()
            assert released.wait(10)
        return real_holdings_of(names)

    monkeypatch.setattr(queries, "holdings_of", holdings_after_the_release)
    answers: list = []
    errors: list[BaseException] = []
    waiter = threading.Thread(
        target=lambda: errors.extend(
            run_threads(lambda _: answers.append(lock(client_for(orders), ["res:stamp"], wait=5)), 1)
        )
    )
    waiter.start()
    assert has_rows.wait(10)
    assert release(inventory, first).status_code == 200
    released.set()
    waiter.join(20)
    assert errors == [] and answers[0].status_code == 201, answers[0].content
    before, after = Lease.objects.get(id=first["id"]), Lease.objects.get(id=answers[0].json()["id"])
    assert after.acquired_at >= before.released_at
