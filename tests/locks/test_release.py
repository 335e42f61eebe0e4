"""DELETE locks/{id}/ and heartbeats: the holder, a human, nobody else."""

import pytest

from memoryhub.events.models import Event
from memoryhub.locks.models import Lease, LeaseResource

from .conftest import error_of, heartbeat, lapse, lock, release

pytestmark = pytest.mark.django_db


def test_the_holder_releases_and_the_resource_is_free_at_once(inventory, orders):
    lease = lock(inventory, ["pricing-table"]).json()
    response = release(inventory, lease, reason="done")
    assert response.status_code == 200
    body = response.json()
    assert body["released"] is True and body["active"] is False
    assert body["release_reason"] == "released"
    event = Event.objects.get(seq=body["seq"])
    assert (event.type, event.actor_id, event.reason) == ("lock.released", "inventory-1", "done")
    assert lock(orders, ["pricing-table"]).status_code == 201


def test_another_agent_may_not_release_a_lease(inventory, orders):
    lease = lock(inventory, ["inventory:pricing"]).json()  # a name orders may read: it may know of the lease
    error_of(release(orders, lease), 403, "forbidden")
    error_of(heartbeat(orders, lease), 403, "forbidden")
    assert Lease.objects.get(id=lease["id"]).released_at is None


def test_only_the_process_holding_the_lease_releases_or_extends_it(inventory):
    """Issue 12 L9: several processes may run as one agent; the holder is the one its acquisition
    answered, proven by the holder token. Another process of the same agent (no token, or its own)
    can neither release the lease nor keep it alive."""
    lease = lock(inventory, ["pricing-table"], ttl=5).json()
    twin = lock(inventory, ["other-table"]).json()  # the twin's own lease: its token proves nothing here
    for call in (release, heartbeat):
        for proof in ({}, {"holder_token": twin["holder_token"]}):
            details = error_of(call(inventory, lease["id"], **proof), 403, "forbidden")
            assert "holder_token" in details
    row = Lease.objects.get(id=lease["id"])
    assert (row.released_at, row.heartbeat_at, row.depth) == (None, None, 1)
    assert heartbeat(inventory, lease).status_code == 200
    assert release(inventory, lease).json()["released"] is True


def test_a_malformed_holder_token_is_400(inventory):
    lease = lock(inventory, ["pricing-table"]).json()
    for call in (release, heartbeat):
        assert "holder_token" in error_of(call(inventory, lease["id"], holder_token="short\n"), 400, "invalid")


def test_a_lease_the_caller_may_not_see_answers_as_if_absent(inventory, make_agent):
    """Issue 12 L4: someone else's lease on names the caller may not read gets the answer an id never
    drawn gets, from every lease endpoint (no 403 saying whose it is)."""
    sales = make_agent("sales-1", "sales")
    lease = lock(sales, ["memory:customer:acme/plan"]).json()
    unknown = lease["id"] + 1000
    for call in (release, heartbeat):
        hidden, absent = call(inventory, lease["id"]), call(inventory, unknown)
        assert error_of(hidden, 404, "not_found") == error_of(absent, 404, "not_found")
        assert hidden.json()["error"]["message"] == absent.json()["error"]["message"].replace(
            str(unknown), str(lease["id"])
        )
        assert "sales-1" not in hidden.content.decode()
    assert inventory.client.get(f"/api/v1/locks/{lease['id']}/").status_code == 404
    assert Lease.objects.get(id=lease["id"]).released_at is None


def test_releasing_an_unknown_lease_is_404(inventory):
    error_of(release(inventory, 424242), 404, "not_found")


def test_a_human_force_releases_with_a_reason(inventory, orders, human):
    lease = lock(inventory, ["pricing-table"]).json()
    lock(inventory, ["pricing-table"], holder_token=lease["holder_token"])  # depth 2: a force-release ignores depth
    response = release(human, lease, reason="agent crashed")
    assert response.status_code == 200, response.content
    event = Event.objects.get(seq=response.json()["seq"])
    assert (event.type, event.actor_kind, event.reason) == ("lock.force_released", "human", "agent crashed")
    assert "agent:inventory-1" in event.audience
    assert not LeaseResource.objects.filter(lease_id=lease["id"], active=True).exists()
    assert lock(orders, ["pricing-table"]).status_code == 201


def test_releasing_twice_says_the_lease_is_gone(inventory):
    lease = lock(inventory, ["pricing-table"]).json()
    release(inventory, lease)
    details = error_of(release(inventory, lease), 409, "lease_expired")
    assert details["release_reason"] == "released"


def test_releasing_a_lapsed_lease_tells_the_holder_and_records_the_expiry(inventory):
    lease = lock(inventory, ["pricing-table"]).json()
    lapse(lease["id"])
    details = error_of(release(inventory, lease), 409, "lease_expired")
    assert details["release_reason"] == "expired"
    assert Event.objects.filter(type="lock.expired", actor_kind="system").count() == 1


def test_heartbeat_extends_the_lease_without_an_event(inventory):
    lease = lock(inventory, ["pricing-table"], ttl=5).json()
    events = Event.objects.count()
    response = heartbeat(inventory, lease, ttl_seconds=120)
    assert response.status_code == 200
    body = response.json()
    assert body["expires_at"] > lease["expires_at"]
    assert body["heartbeat_at"] and body["seq"] is None
    assert Event.objects.count() == events
    # Without a ttl the lease's own is used again.
    assert heartbeat(inventory, lease).status_code == 200


def test_only_the_holder_heartbeats(inventory, orders, human):
    lease = lock(inventory, ["inventory:pricing"]).json()
    error_of(heartbeat(orders, lease), 403, "forbidden")
    error_of(heartbeat(human, lease), 403, "forbidden")


def test_a_heartbeat_after_the_lease_lapsed_is_409_lease_expired(inventory, orders):
    lease = lock(inventory, ["pricing-table"], ttl=5).json()
    lapse(lease["id"])
    details = error_of(heartbeat(inventory, lease, ttl_seconds=30), 409, "lease_expired")
    assert details["lease_id"] == lease["id"]
    # Too late to revive it: the resource is free for the next agent.
    assert lock(orders, ["pricing-table"]).status_code == 201


def test_a_bad_heartbeat_ttl_is_400(inventory):
    lease = lock(inventory, ["pricing-table"]).json()
    assert "ttl_seconds" in error_of(heartbeat(inventory, lease, ttl_seconds=0), 400, "invalid")
