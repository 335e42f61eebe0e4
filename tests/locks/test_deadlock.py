"""SCENARIO 7: agent A locks [a, b] while agent B locks [b, a], in loops, on real threads against the
real database. Resources are taken in one global order, so neither ever holds one and waits for the
other; and every acquisition is exclusive."""

import threading

import pytest
from rest_framework.test import APIClient

from memoryhub.events.models import Event
from memoryhub.locks.models import Lease

from .conftest import lock, release, run_threads

ITERATIONS = 50


@pytest.mark.django_db(transaction=True)
def test_opposite_order_lockers_never_deadlock_and_never_overlap(policies, make_agent):
    agents = [make_agent("inventory-1", "inventory"), make_agent("pricing-1", "pricing")]
    orders = [["a", "b"], ["b", "a"]]
    guard = threading.Lock()
    inside = {"now": 0, "max": 0, "entries": 0}
    start = threading.Barrier(2)

    def loop(index: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {agents[index].token}")
        start.wait()
        for _ in range(ITERATIONS):
            response = lock(client, orders[index], ttl=30, wait=10)
            assert response.status_code == 201, response.content
            with guard:
                inside["now"] += 1
                inside["entries"] += 1
                inside["max"] = max(inside["max"], inside["now"])
            with guard:
                inside["now"] -= 1
            assert release(client, response.json()).status_code == 200

    assert run_threads(loop, 2) == []
    assert inside["entries"] == 2 * ITERATIONS
    assert inside["max"] == 1  # never both inside

    # The log tells the same story: replayed in seq order, no grant comes before the previous
    # holder's release, and fencing tokens only rise.
    leases = Lease.objects.all()
    assert len(leases) == 2 * ITERATIONS
    assert all(lease.release_reason == "released" for lease in leases)
    holder, tokens = None, []
    for event in Event.objects.filter(type__in=["lock.acquired", "lock.released"]).order_by("seq"):
        if event.type == "lock.acquired":
            assert holder is None, f"lease {event.after['lease_id']} granted while {holder} held"
            holder = event.after["lease_id"]
            tokens.append(event.after["fencing_token"])
        else:
            assert holder == event.after["lease_id"]
            holder = None
    assert len(tokens) == 2 * ITERATIONS
    assert tokens == sorted(set(tokens))  # strictly rising
    assert [lease.fencing_token for lease in leases.order_by("id")] == tokens
    # And so do the leases' own times: each starts at or after the previous one's release (a grant
    # stamped before the release it saw committed would look like an overlap to an auditor).
    spans = list(leases.order_by("acquired_at").values_list("acquired_at", "released_at"))
    for (_, ended), (started, _) in zip(spans, spans[1:], strict=False):
        assert started >= ended, "two exclusive leases overlap in their recorded times"
