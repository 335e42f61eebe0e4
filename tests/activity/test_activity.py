"""GET activity/: recent events by others on a resource, and whether to defer (SCENARIO 3)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from memoryhub.activity.selectors import activity_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(policies, make_agent):
    return make_agent("sales-1", "sales")


@pytest.fixture
def support(policies, make_agent):
    return make_agent("support-1", "support")


@pytest.fixture
def product(policies, make_agent):
    return make_agent("product-1", "product")


def put(client, namespace, key, content):
    client = getattr(client, "client", client)
    response = client.put(
        f"/api/v1/memories/{namespace}/{key}/", json.dumps({"content": content}), content_type="application/json"
    )
    assert response.status_code in (200, 201), response.content
    return response.json()


def activity(persona_or_client, resource, **params):
    client = getattr(persona_or_client, "client", persona_or_client)
    return client.get("/api/v1/activity/", {"resource": resource, **params})


def test_sales_defers_to_support_after_support_acted_on_the_customer(sales, support):
    written = put(support, "customer:acme", "profile", {"health": "at_risk"})
    for resource in ("customer:acme", "customer:acme/profile"):
        response = activity(sales, resource)
        assert response.status_code == 200
        body = response.json()
        assert body["resource"] == resource and body["window_seconds"] == 300
        assert (body["proceed"], body["defer_to"]) == (False, "support")
        assert "support-1" in body["reason"]
        assert body["until"]
        assert [e["seq"] for e in body["events"]] == [written["seq"]]
        assert body["events"][0]["actor"] == {"kind": "agent", "id": "support-1", "role": "support"}


def test_the_acting_agent_and_other_roles_proceed(sales, support, product):
    put(support, "customer:acme", "profile", {"health": "at_risk"})
    own = activity(support, "customer:acme").json()
    assert own["proceed"] is True and own["events"] == []  # its own events are not "others"
    other = activity(product, "customer:acme").json()
    assert other["proceed"] is True and len(other["events"]) == 1


def test_deference_ends_with_its_window(sales, support):
    put(support, "customer:acme", "profile", {"health": "at_risk"})
    later = activity_for(actor=sales.actor, resource="customer:acme", now=timezone.now() + timedelta(seconds=301))
    assert later["proceed"] is True and later["events"] == []


def test_a_human_hold_makes_every_agent_defer(sales, support, human):
    response = human.post(
        "/api/v1/holds/",
        json.dumps({"resource": "customer:acme", "reason": "legal review"}),
        content_type="application/json",
    )
    assert response.status_code == 201
    for persona in (sales, support):
        body = activity(persona, "customer:acme/profile").json()
        assert (body["proceed"], body["defer_to"]) == (False, "human")
        assert body["hold"]["placed_by"] == "human:alice"
    assert activity(human, "customer:acme").json()["proceed"] is True


def test_a_recent_human_action_makes_agents_defer(sales, human):
    put(human, "customer:globex", "profile", {"note": "I'm handling this"})
    body = activity(sales, "customer:globex").json()
    assert (body["proceed"], body["defer_to"]) == (False, "human")


def test_only_events_the_caller_may_see_are_shown_or_counted(sales, support):
    put(support, "customer:vip:acme", "profile", {"health": "at_risk"})
    body = activity(sales, "customer:vip:acme").json()
    assert body["events"] == [] and body["proceed"] is True


def test_lock_events_count_as_activity_on_the_memory(policies, make_agent):
    inventory = make_agent("inventory-1", "inventory")
    orders = make_agent("orders-1", "orders")
    locked = orders.client.post(
        "/api/v1/locks/",
        json.dumps({"resources": ["memory:inventory:sku-1/count", "memory:inventory:sku-2/count"], "ttl_seconds": 30}),
        content_type="application/json",
    ).json()
    for resource in ("inventory:sku-1/count", "memory:inventory:sku-2/count", "inventory:sku-1"):
        events = activity(inventory, resource).json()["events"]
        assert [(e["type"], e["seq"]) for e in events] == [("lock.acquired", locked["seq"])]
    assert activity(inventory, "inventory:sku-3").json()["events"] == []


@pytest.mark.parametrize(
    "params, field",
    [({}, "resource"), ({"resource": "a b"}, "resource"), ({"resource": "a", "window_seconds": 0}, "window_seconds")],
)
def test_bad_activity_queries_are_400(sales, params, field):
    response = sales.client.get("/api/v1/activity/", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert field in response.json()["error"]["details"]
