"""Human holds: agents' lock requests and memory writes on a held resource answer 423 held."""

import json

import pytest

from memoryhub.actors import SYSTEM
from memoryhub.events.models import Event
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES

from .conftest import error_of, lock

pytestmark = pytest.mark.django_db


def place(client, resource, reason="checking the count"):
    client = getattr(client, "client", client)
    return client.post(
        "/api/v1/holds/", json.dumps({"resource": resource, "reason": reason}), content_type="application/json"
    )


def test_a_hold_stops_agents_until_it_is_lifted(inventory, human):
    response = place(human, "inventory:sku-1")
    assert response.status_code == 201, response.content
    hold = response.json()
    placed = Event.objects.get(seq=hold["seq"])
    assert (placed.type, placed.actor_kind, placed.namespace) == ("hold.placed", "human", "inventory:sku-1")

    details = error_of(lock(inventory, ["memory:inventory:sku-1/count"]), 423, "held")
    assert details["hold"] == "inventory:sku-1" and details["placed_by"] == "human:alice"
    write = inventory.client.put(
        "/api/v1/memories/inventory:sku-1/count/",
        json.dumps({"content": {"units": 1}}),
        content_type="application/json",
        HTTP_X_FENCING_TOKEN="1",
    )
    error_of(write, 423, "held")

    lifted = human.delete(
        f"/api/v1/holds/{hold['id']}/", json.dumps({"reason": "all good"}), content_type="application/json"
    )
    assert lifted.status_code == 200
    assert Event.objects.get(seq=lifted.json()["seq"]).type == "hold.lifted"
    assert lock(inventory, ["memory:inventory:sku-1/count"]).status_code == 201


def test_a_hold_on_a_lock_name_stops_that_lock_only(inventory, human):
    place(human, "pricing-table")
    error_of(lock(inventory, ["pricing-table", "other"]), 423, "held")
    assert lock(inventory, ["other"]).status_code == 201


def test_only_humans_place_and_lift_holds(inventory, human):
    error_of(place(inventory, "inventory:sku-1"), 403, "forbidden")
    hold = place(human, "inventory:sku-1").json()
    error_of(inventory.client.delete(f"/api/v1/holds/{hold['id']}/"), 403, "forbidden")


def test_one_hold_per_resource_and_lifting_twice_is_a_conflict(human):
    hold = place(human, "inventory:sku-1").json()
    error_of(place(human, "inventory:sku-1"), 409, "conflict")
    assert human.delete(f"/api/v1/holds/{hold['id']}/").status_code == 200
    error_of(human.delete(f"/api/v1/holds/{hold['id']}/"), 409, "conflict")
    error_of(human.delete("/api/v1/holds/99999/"), 404, "not_found")
    assert place(human, "inventory:sku-1").status_code == 201


def test_agents_can_see_the_holds_in_place(inventory, human):
    first = place(human, "inventory:sku-1").json()
    second = place(human, "inventory:sku-2").json()
    human.delete(f"/api/v1/holds/{second['id']}/")
    active = inventory.client.get("/api/v1/holds/").json()["results"]
    assert [hold["id"] for hold in active] == [first["id"]]
    everything = inventory.client.get("/api/v1/holds/?active=false").json()["results"]
    assert {hold["id"] for hold in everything} == {first["id"], second["id"]}
    covering = inventory.client.get("/api/v1/holds/?resource=memory:inventory:sku-1/count").json()["results"]
    assert [hold["id"] for hold in covering] == [first["id"]]
    assert inventory.client.get(f"/api/v1/holds/{first['id']}/").json()["active"] is True


def test_a_bad_hold_is_400(human):
    assert "resource" in error_of(place(human, "two words"), 400, "invalid")
    response = human.post("/api/v1/holds/", json.dumps({"reason": "x"}), content_type="application/json")
    assert "resource" in error_of(response, 400, "invalid")


def test_while_no_hold_is_in_place_writes_do_not_ask_for_one(inventory, human):
    """The token lookup reads whether any hold exists; with none, a memory write skips the hold
    query. Once a hold is placed, the next request asks again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def hold_queries(key: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = inventory.client.put(
                f"/api/v1/memories/counter:stock/{key}/", {"content": {"n": 1}}, content_type="application/json"
            )
        assert response.status_code == 201, response.content
        return sum("locks_hold WHERE lifted_at IS NULL AND resource IN" in q["sql"] for q in queries.captured_queries)

    assert hold_queries("a") == 0
    place(human, "pricing-table")
    assert hold_queries("b") == 1


SECRET_POLICIES = {
    **TEST_POLICIES,
    "namespaces": [
        *TEST_POLICIES["namespaces"],
        {"pattern": "team:y:*", "readers": ["y"], "writers": ["y"]},
        {"pattern": "drop:*", "readers": ["lead"], "writers": ["a", "lead"]},
    ],
}


@pytest.fixture
def teams(db, make_agent, human):
    policies_apply(actor=SYSTEM, document=SECRET_POLICIES)
    holds = {
        resource: place(human, resource, reason=f"{resource} HOLD-REASON").json()
        for resource in ("team:y:secret/plan", "drop:box/k")
    }
    return make_agent("a1", "a"), make_agent("y1", "y"), holds


def test_an_agent_sees_only_the_holds_on_what_it_may_read(teams, human):
    """Issue 12 L3: holds/, holds/<id>/ and activity/ show a hold (its resource and reason) only to
    callers who may read the namespace held."""
    a1, y1, holds = teams
    secret = holds["team:y:secret/plan"]
    assert a1.client.get("/api/v1/holds/").json()["results"] == []
    assert a1.client.get("/api/v1/holds/?active=false&resource=team:y:secret/plan").json()["results"] == []
    error_of(a1.client.get(f"/api/v1/holds/{secret['id']}/"), 404, "not_found")
    assert error_of(a1.client.get("/api/v1/holds/99999/"), 404, "not_found") == {}
    assert [hold["reason"] for hold in y1.client.get("/api/v1/holds/").json()["results"]] == [
        "team:y:secret/plan HOLD-REASON"
    ]
    assert y1.client.get(f"/api/v1/holds/{secret['id']}/").status_code == 200
    assert len(human.get("/api/v1/holds/").json()["results"]) == 2

    seen = a1.client.get("/api/v1/activity/?resource=team:y:secret/plan").json()
    absent = a1.client.get("/api/v1/activity/?resource=team:y:other/plan").json()
    assert (seen["hold"], seen["proceed"], seen["reason"]) == (None, True, absent["reason"])
    assert y1.client.get("/api/v1/activity/?resource=team:y:secret/plan").json()["hold"]["id"] == secret["id"]


def test_a_hold_stops_a_writer_who_may_not_read_without_telling_it_more_than_it_sent(teams):
    a1, y1, _ = teams
    write = a1.client.put(
        "/api/v1/memories/drop:box/k/", json.dumps({"content": {"n": 1}}), content_type="application/json"
    )
    details = error_of(write, 423, "held")
    assert "HOLD-REASON" not in write.content.decode() and "alice" not in write.content.decode()
    assert details == {"resources": ["drop:box/k"]}
    refused = lock(a1, ["memory:drop:box/k", "a1-own-name"])
    assert error_of(refused, 423, "held") == {"resources": ["memory:drop:box/k"]}
    assert "HOLD-REASON" not in refused.content.decode()
    activity = a1.client.get("/api/v1/activity/?resource=drop:box/k").json()
    assert (activity["proceed"], activity["hold"], activity["defer_to"]) == (False, None, "human")
    assert "HOLD-REASON" not in json.dumps(activity)
    # Who may read the namespace is told the hold.
    write = y1.client.put(
        "/api/v1/memories/team:y:secret/plan/", json.dumps({"content": {"n": 1}}), content_type="application/json"
    )
    assert error_of(write, 423, "held")["reason"] == "team:y:secret/plan HOLD-REASON"
