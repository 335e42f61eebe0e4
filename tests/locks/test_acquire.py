"""POST locks/: exclusive and shared, all or nothing, re-entrant, fencing tokens rising per resource."""

import hashlib

import pytest

from memoryhub.events.models import Event
from memoryhub.locks.models import Lease, LeaseResource, LockResource

from .conftest import error_of, lock, release

pytestmark = pytest.mark.django_db


def test_exclusive_lock_is_granted_with_a_fencing_token_and_an_event(inventory):
    response = lock(inventory, ["pricing-table"], ttl=30)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["resources"] == ["pricing-table"]
    assert body["mode"] == "exclusive"
    assert body["agent"] == "inventory-1"
    assert body["expires_at"]
    assert body["fencing_token"] == body["id"]
    event = Event.objects.get(seq=body["seq"])
    assert event.type == "lock.acquired"
    assert event.actor_id == "inventory-1"
    assert event.resource == "pricing-table"
    assert event.after["lease_id"] == body["id"]


def test_second_exclusive_request_is_refused_with_the_holders(inventory, orders):
    first = lock(inventory, ["inventory:pricing-table"]).json()
    details = error_of(lock(orders, ["inventory:pricing-table"]), 409, "lock_held")
    assert details["holders"] == [
        {
            "resource": "inventory:pricing-table",
            "agent": "inventory-1",
            "lease_id": first["id"],
            "mode": "exclusive",
            "expires_at": first["expires_at"],
        }
    ]
    assert Lease.objects.filter(agent_id="orders-1").count() == 0


def test_a_refusal_names_no_holder_the_caller_may_not_see(inventory, orders):
    """Lock names follow their namespace (selectors.lease_visible): a name that denotes none (or one the
    caller may not read) is refused as held, without who holds it, which lease or until when."""
    lock(inventory, ["pricing-table"])
    refused = lock(orders, ["pricing-table"])
    details = error_of(refused, 409, "lock_held")
    assert details["holders"] == [
        {"resource": "pricing-table", "agent": None, "lease_id": None, "mode": "exclusive", "expires_at": None}
    ]
    assert "inventory-1" not in refused.content.decode()


def test_shared_locks_coexist_and_keep_an_exclusive_out(inventory, orders, docs):
    assert lock(inventory, ["code:catalog"], mode="shared").status_code == 201
    assert lock(orders, ["code:catalog"], mode="shared").status_code == 201
    details = error_of(lock(docs, ["code:catalog"], mode="exclusive"), 409, "lock_held")
    assert sorted(holder["agent"] for holder in details["holders"]) == ["inventory-1", "orders-1"]


def test_an_exclusive_lock_keeps_shared_readers_out(inventory, orders):
    assert lock(inventory, ["catalog"]).status_code == 201
    error_of(lock(orders, ["catalog"], mode="shared"), 409, "lock_held")


def test_several_resources_are_taken_all_or_nothing(inventory, orders):
    assert lock(inventory, ["b"]).status_code == 201
    details = error_of(lock(orders, ["a", "b"]), 409, "lock_held")
    assert [holder["resource"] for holder in details["holders"]] == ["b"]
    # Nothing of the refused request stays: `a` is free for anyone.
    assert not LeaseResource.objects.filter(resource="a", active=True).exists()
    assert lock(inventory, ["a"]).status_code == 201


def test_resources_are_normalised_to_one_sorted_set(inventory):
    body = lock(inventory, ["b", "a", "b"]).json()
    assert body["resources"] == ["a", "b"]
    event = Event.objects.get(seq=body["seq"])
    # Several names: no single resource (see locks/events.py:event_place); they are in the lease state.
    assert (event.resource, event.after["resources"]) == ("", ["a", "b"])


def test_reacquiring_what_you_hold_reenters_the_same_lease(inventory, orders):
    first = lock(inventory, ["ledger"], ttl=10).json()
    token = first["holder_token"]
    assert len(token) >= 32 and first["reentered"] is False
    again = lock(inventory, ["ledger"], ttl=60, holder_token=token)
    assert again.status_code == 201
    second = again.json()
    assert second["id"] == first["id"]
    assert second["reentered"] is True
    assert second["depth"] == 2
    assert second["fencing_token"] == first["fencing_token"]
    assert second["expires_at"] > first["expires_at"]
    # An exclusive lease also covers a shared request for the same resources.
    assert lock(inventory, ["ledger"], mode="shared", holder_token=token).json()["depth"] == 3

    for remaining in (2, 1):
        body = release(inventory, first).json()
        assert body["released"] is False and body["depth"] == remaining
        error_of(lock(orders, ["ledger"]), 409, "lock_held")
    assert release(inventory, first).json()["released"] is True
    assert lock(orders, ["ledger"]).status_code == 201


def test_fencing_tokens_rise_strictly_for_each_resource(inventory, orders):
    tokens = []
    for persona in (inventory, orders, inventory, orders):
        body = lock(persona, ["memory:inventory:sku-9/count"]).json()
        tokens.append(body["fencing_token"])
        assert release(persona, body).status_code == 200
    assert tokens == sorted(tokens) and len(set(tokens)) == 4


def test_contention_counters_count_grants_and_refusals(inventory, orders, human):
    lock(inventory, ["hot"])
    lock(orders, ["hot"])
    lock(orders, ["hot"])
    row = LockResource.objects.get(name="hot")
    assert (row.acquired_count, row.denied_count) == (1, 2)
    results = human.get("/api/v1/locks/contention/").json()["results"]
    hot = next(item for item in results if item["resource"] == "hot")
    assert hot["acquired_count"] == 1 and hot["denied_count"] == 2 and hot["holders"] == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"resources": [], "ttl_seconds": 10}, "resources"),
        ({"resources": "a", "ttl_seconds": 10}, "resources"),
        ({"resources": ["a b"], "ttl_seconds": 10}, "resources"),
        ({"resources": ["a,b"], "ttl_seconds": 10}, "resources"),
        ({"resources": ["a"], "ttl_seconds": 0}, "ttl_seconds"),
        ({"resources": ["a"]}, "ttl_seconds"),
        ({"resources": ["a"], "ttl_seconds": 10, "mode": "sideways"}, "mode"),
        ({"resources": ["a"], "ttl_seconds": 10, "wait_seconds": 31}, "wait_seconds"),
        ({"resources": ["a"], "ttl_seconds": 10, "agent": "someone-else"}, "agent"),
    ],
)
def test_bad_lock_requests_are_400_with_the_field(inventory, body, field):
    import json

    response = inventory.client.post("/api/v1/locks/", json.dumps(body), content_type="application/json")
    details = error_of(response, 400, "invalid")
    assert field in details
    assert not Lease.objects.exists()


def test_humans_place_holds_rather_than_take_locks(human):
    error_of(lock(human, ["pricing-table"]), 403, "forbidden")


def test_locking_a_memory_needs_write_access_to_its_namespace(docs):
    details = error_of(lock(docs, ["memory:inventory:sku-1/count"]), 403, "forbidden")
    assert details["policy"]["pattern"] == "inventory:*"


def test_an_unauthenticated_lock_request_is_401(db):
    from rest_framework.test import APIClient

    error_of(lock(APIClient(), ["a"]), 401, "unauthenticated")


def test_list_shows_active_leases_by_resource_and_agent(inventory, orders):
    mine = lock(inventory, ["inventory:a"]).json()
    theirs = lock(orders, ["inventory:b"]).json()
    everything = inventory.client.get("/api/v1/locks/").json()
    assert [lease["id"] for lease in everything["results"]] == [mine["id"], theirs["id"]]
    on_b = inventory.client.get("/api/v1/locks/?resource=inventory:b").json()["results"]
    assert [lease["id"] for lease in on_b] == [theirs["id"]]
    by_inventory = inventory.client.get("/api/v1/locks/?agent=inventory-1").json()["results"]
    assert [lease["id"] for lease in by_inventory] == [mine["id"]]
    assert inventory.client.get(f"/api/v1/locks/{theirs['id']}/").json()["agent"] == "orders-1"
    error_of(inventory.client.get("/api/v1/locks/999999/"), 404, "not_found")


def test_a_page_of_leases_is_full_of_what_the_caller_may_see(inventory, make_agent):
    # Leases it may not see come first in id order: the page must look past them, not come back short.
    from memoryhub.locks.selectors import leases_active

    support = make_agent("support-1", "support")
    for key in ("a", "b", "c"):
        assert lock(support, [f"memory:customer:vip:acme/{key}"]).status_code == 201
    mine = [lock(inventory, [name]).json()["id"] for name in ("pricing", "stock")]
    page = leases_active(actor=inventory.actor, limit=2)["results"]
    assert [lease["id"] for lease in page] == mine


def test_an_operator_can_lower_the_longest_lock_wait(inventory, settings):
    """MEMORYHUB_MAX_LOCK_WAIT_SECONDS bounds how long a request may keep its (sync) worker waiting."""
    import json

    settings.MEMORYHUB_MAX_LOCK_WAIT_SECONDS = 5
    body = {"resources": ["a"], "ttl_seconds": 10, "wait_seconds": 6}
    response = inventory.client.post("/api/v1/locks/", json.dumps(body), content_type="application/json")
    assert "wait_seconds" in error_of(response, 400, "invalid")
    assert not Lease.objects.exists()


@pytest.mark.parametrize(("setting", "expected"), [("600", "30"), ("10", "10")])
def test_the_longest_lock_wait_never_exceeds_the_api_ceiling(setting, expected):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MEMORYHUB_MAX_LOCK_WAIT_SECONDS": setting}
    read = "import memoryhub.settings as s; print(s.MEMORYHUB_MAX_LOCK_WAIT_SECONDS)"
    result = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected


def test_reentry_needs_the_holder_token_not_only_the_agent_id(inventory):
    """Issue 12 L9: another process running as the same agent (same bearer token) is a contender: it
    gets 409 lock_held (or waits) unless it proves it holds the lease with the token the grant returned.
    The hub keeps only the token's digest."""
    first = lock(inventory, ["ledger"], holder_token="process-one-token-0123").json()
    assert first["holder_token"] == "process-one-token-0123"
    lease = Lease.objects.get(id=first["id"])
    assert lease.holder_digest == hashlib.sha256(b"process-one-token-0123").hexdigest()
    details = error_of(lock(inventory, ["ledger"]), 409, "lock_held")
    assert [holder["lease_id"] for holder in details["holders"]] == [first["id"]]
    error_of(lock(inventory, ["ledger"], holder_token="process-two-token-4567"), 409, "lock_held")
    assert Lease.objects.get(id=first["id"]).depth == 1
    # A shared lease is no proof for a shared request either: a second shared lease is granted beside it.
    shared = lock(inventory, ["board"], mode="shared").json()
    other = lock(inventory, ["board"], mode="shared").json()
    assert other["id"] != shared["id"] and other["reentered"] is False
    again = lock(inventory, ["ledger"], holder_token="process-one-token-0123").json()
    assert (again["id"], again["reentered"], again["depth"]) == (first["id"], True, 2)


@pytest.mark.parametrize("token", ["short", "x" * 129, "has space in it ok", "newline-at-the-end\n", 12345678901234567])
def test_a_bad_holder_token_is_400(inventory, token):
    assert "holder_token" in error_of(lock(inventory, ["ledger"], holder_token=token), 400, "invalid")
