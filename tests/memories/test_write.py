"""PUT / PATCH / DELETE of memories: versions, If-Match, write modes, ownership, limits, provenance."""

import json

from memoryhub.events.models import Event
from memoryhub.memories.models import Memory

from .conftest import patch, put, url


def error(response):
    return response.json()["error"]


def test_create_returns_version_1_etag_and_the_event_seq(sales):
    response = put(sales, "customer:acme", "profile", {"name": "Acme"}, reason="first contact")
    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1 and body["created_by"] == "sales-1" and body["updated_by"] == "sales-1"
    assert response["ETag"] == '"1"'
    event = Event.objects.get(seq=body["seq"])
    assert (event.type, event.resource, event.version, event.reason) == (
        "memory.created",
        "customer:acme/profile",
        1,
        "first contact",
    )
    assert (event.actor_kind, event.actor_id, event.actor_role) == ("agent", "sales-1", "sales")


def test_update_in_optimistic_namespace_needs_if_match(sales):
    put(sales, "customer:acme", "profile", {"name": "Acme"})
    response = put(sales, "customer:acme", "profile", {"name": "Acme Inc"})
    assert response.status_code == 428
    assert error(response)["code"] == "precondition_required"
    assert Memory.objects.get().content == {"name": "Acme"}


def test_stale_version_is_rejected_with_current_state(sales, support):
    put(sales, "customer:acme", "profile", {"stock": 5})
    assert put(sales, "customer:acme", "profile", {"stock": 2}, version=1).status_code == 200
    response = put(support, "customer:acme", "profile", {"stock": 4}, version=1)
    assert response.status_code == 412
    body = error(response)
    assert body["code"] == "version_conflict"
    assert body["details"]["current"]["content"] == {"stock": 2}
    assert body["details"]["current"]["version"] == 2
    assert Memory.objects.get().content == {"stock": 2}
    assert Event.objects.filter(type="conflict.rejected", actor_id="support-1").count() == 1


def test_the_inventory_race_ends_right_with_a_reread(sales, support):
    """Scenario 1: both read 5; one writes 2; the other's write of 4 is refused, it re-reads and applies -1."""
    put(sales, "customer:shop", "stock", {"units": 5})
    seen_by_orders = sales.client.get(url("customer:shop", "stock")).json()
    seen_by_inventory = support.client.get(url("customer:shop", "stock")).json()
    put(
        sales,
        "customer:shop",
        "stock",
        {"units": seen_by_orders["content"]["units"] - 3},
        version=seen_by_orders["version"],
    )
    refused = put(
        support,
        "customer:shop",
        "stock",
        {"units": seen_by_inventory["content"]["units"] - 1},
        version=seen_by_inventory["version"],
    )
    assert refused.status_code == 412
    current = refused.json()["error"]["details"]["current"]
    assert (
        put(
            support, "customer:shop", "stock", {"units": current["content"]["units"] - 1}, version=current["version"]
        ).status_code
        == 200
    )
    assert Memory.objects.get(key="stock").content == {"units": 1}


def test_if_none_match_creates_only_if_absent(sales):
    first = sales.client.put(
        url("customer:acme", "lock"),
        json.dumps({"content": {"a": 1}}),
        content_type="application/json",
        HTTP_IF_NONE_MATCH="*",
    )
    assert first.status_code == 201
    second = sales.client.put(
        url("customer:acme", "lock"),
        json.dumps({"content": {"a": 2}}),
        content_type="application/json",
        HTTP_IF_NONE_MATCH="*",
    )
    assert second.status_code == 412
    assert error(second)["details"]["current"]["content"] == {"a": 1}


def test_last_write_wins_namespace_takes_unconditional_writes(sales, support):
    put(sales, "scratch:notes", "today", {"n": 1})
    response = put(support, "scratch:notes", "today", {"n": 2})
    assert response.status_code == 200 and response.json()["version"] == 2


def test_locked_namespace_without_a_lock_is_423(make_agent, policies):
    inventory = make_agent("inventory-1", "inventory")
    response = put(inventory, "inventory:sku-1", "count", {"units": 3})
    assert response.status_code == 423
    assert error(response)["code"] == "held"
    assert not Memory.objects.exists()


def test_writer_outside_its_domain_is_forbidden_with_the_policy(docs):
    response = put(docs, "customer:acme", "profile", {"x": 1})
    assert response.status_code == 403
    body = error(response)
    assert body["code"] == "forbidden"
    assert body["details"]["policy"]["pattern"] == "customer:*"


def test_field_owned_by_another_role_is_refused_and_names_the_owner(sales, product):
    put(sales, "customer:acme", "deal", {"deal_stage": "proposal", "notes": ""})
    response = patch(product, "customer:acme", "deal", {"deal_stage": "won"}, version=1)
    assert response.status_code == 403
    body = error(response)
    assert body["code"] == "field_not_owned"
    assert body["details"]["fields"] == {"deal_stage": ["sales"]}
    assert "handoff" in body["message"]
    assert Memory.objects.get().content["deal_stage"] == "proposal"
    # Unowned fields stay writable by every writer of the namespace.
    assert patch(product, "customer:acme", "deal", {"notes": "asked for a demo"}, version=1).status_code == 200


def test_human_may_change_an_owned_field(sales, human):
    put(sales, "customer:acme", "deal", {"deal_stage": "proposal"})
    response = patch(human, "customer:acme", "deal", {"deal_stage": "lost"}, version=1, reason="customer called")
    assert response.status_code == 200
    assert response.json()["updated_by"] == "human:alice"


def test_patch_is_a_json_merge_patch(sales):
    put(sales, "customer:acme", "profile", {"name": "Acme", "address": {"city": "Lyon", "zip": "69000"}, "tags": ["a"]})
    response = patch(
        sales,
        "customer:acme",
        "profile",
        {"address": {"zip": None, "street": "Rue X"}, "tags": ["b"], "vip": True},
        version=1,
    )
    assert response.status_code == 200
    assert response.json()["content"] == {
        "name": "Acme",
        "address": {"city": "Lyon", "street": "Rue X"},
        "tags": ["b"],
        "vip": True,
    }


def test_patch_of_a_missing_memory_is_404(sales):
    assert patch(sales, "customer:acme", "nothing", {"a": 1}).status_code == 404


def test_content_over_the_namespace_limit_is_413(make_agent, policies):
    writer = make_agent("writer-1", "sales")
    response = put(writer, "small:box", "item", {"text": "x" * 200})
    assert response.status_code == 413
    assert error(response)["code"] == "too_large"
    assert error(response)["details"]["limit"] == 100
    assert not Memory.objects.exists()


def test_forged_provenance_in_the_body_changes_nothing(sales):
    response = put(
        sales, "customer:acme", "profile", {"a": 1}, updated_by="support-1", created_by="human:boss", version_=3
    )
    assert response.status_code == 400
    assert set(error(response)["details"]) == {"updated_by", "created_by", "version_"}
    assert not Memory.objects.exists()
    assert not Event.objects.filter(type__startswith="memory.").exists()


def test_delete_needs_if_match_and_keeps_history(sales):
    put(sales, "customer:acme", "profile", {"a": 1})
    assert sales.client.delete(url("customer:acme", "profile")).status_code == 428
    response = sales.client.delete(url("customer:acme", "profile"), HTTP_IF_MATCH='"1"')
    assert response.status_code == 200 and response.json()["version"] == 2
    assert sales.client.get(url("customer:acme", "profile")).status_code == 404
    history = sales.client.get(url("customer:acme", "profile", "history/")).json()["versions"]
    assert [v["type"] for v in history] == ["memory.deleted", "memory.created"]
    # Writing again continues the version count.
    again = put(sales, "customer:acme", "profile", {"a": 2})
    assert again.status_code == 201 and again.json()["version"] == 3


def test_bad_input_is_400_in_the_error_shape(sales):
    cases = [
        sales.client.put(url("customer:acme", "p"), "{nope", content_type="application/json"),
        sales.client.put(url("customer:acme", "p"), json.dumps({"content": [1, 2]}), content_type="application/json"),
        sales.client.put(url("customer:acme", "p"), json.dumps({}), content_type="application/json"),
        sales.client.put(
            url("customer:acme", "p"), json.dumps({"content": {}, "kind": "dream"}), content_type="application/json"
        ),
        sales.client.put(
            url("customer:acme", "p"), json.dumps({"content": {}, "ttl_seconds": -5}), content_type="application/json"
        ),
        sales.client.put(
            url("customer:acme", "p"),
            json.dumps({"content": {}}),
            content_type="application/json",
            HTTP_IF_MATCH="soon",
        ),
        sales.client.put(url("customer::bad", "p"), json.dumps({"content": {}}), content_type="application/json"),
        sales.client.get(url("customer:acme", "p") + "?version=abc"),
        sales.client.get(url("customer:acme", "p") + "?as_of=yesterday"),
    ]
    for response in cases:
        assert response.status_code == 400, response.content
        assert error(response)["code"] in {"invalid", "malformed_json"}
    assert not Memory.objects.exists()


def test_ttl_makes_a_memory_expire(sales):
    from datetime import timedelta

    from django.utils import timezone

    from memoryhub.memories.services import memories_expire

    put(sales, "scratch:notes", "soon", {"a": 1}, ttl_seconds=60)
    memory = Memory.objects.get()
    assert memory.expires_at is not None
    Memory.objects.filter(pk=memory.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sales.client.get(url("scratch:notes", "soon")).status_code == 404
    assert memories_expire() == 1
    assert Event.objects.filter(type="memory.expired", resource="scratch:notes/soon").count() == 1
    assert memories_expire() == 0


def test_default_ttl_comes_from_the_namespace_policy(make_agent, db):
    from memoryhub.actors import SYSTEM
    from policies.services import policies_apply

    policies_apply(
        actor=SYSTEM,
        document={"namespaces": [{"pattern": "tmp:*", "readers": ["*"], "writers": ["*"], "default_ttl_seconds": 30}]},
    )
    writer = make_agent("w-1", "worker")
    assert put(writer, "tmp:x", "k", {"a": 1}).json()["expires_at"] is not None


def test_kinds_are_stored_and_filterable(sales):
    put(sales, "customer:acme", "call-1", {"said": "hi"}, kind="episodic")
    put(sales, "customer:acme", "fact-1", {"is": "big"}, kind="semantic")
    listed = sales.client.get("/api/v1/memories/?namespace=customer:acme&kind=episodic").json()["results"]
    assert [m["key"] for m in listed] == ["call-1"]


def test_episodic_memories_are_pruned_after_the_retention(sales, settings):
    from datetime import timedelta

    from django.utils import timezone

    from memoryhub.memories.services import episodic_prune

    settings.MEMORYHUB_EPISODIC_RETENTION_DAYS = 7
    put(sales, "customer:acme", "call-old", {"said": "hi"}, kind="episodic")
    put(sales, "customer:acme", "call-new", {"said": "yo"}, kind="episodic")
    put(sales, "customer:acme", "fact", {"is": "old"}, kind="semantic")
    Memory.objects.exclude(key="call-new").update(updated_at=timezone.now() - timedelta(days=8))
    assert episodic_prune() == 1
    assert sales.client.get(url("customer:acme", "call-old")).status_code == 404
    assert sales.client.get(url("customer:acme", "fact")).status_code == 200
    assert Event.objects.get(type="memory.expired").resource == "customer:acme/call-old"
