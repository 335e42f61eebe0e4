"""/locks/: active leases, waits, holds and contention; force-release, place and lift a hold, each an
event with the human as actor and the reason."""

import json

from memoryhub.locks.models import Hold, Lease
from memoryhub.locks.services import hold_place, lock_acquire

from .conftest import last_event, messages_of


def test_locks_page_shows_active_leases_holds_and_contention(staff, inventory):
    lease = lock_acquire(actor=inventory.actor, resources=["inventory:sku-1"], ttl_seconds=60).lease
    hold_place(actor=staff.actor, resource="customer:acme", reason="audit")
    response = staff.get("/locks/")
    assert [item["id"] for item in response.context["leases"]] == [lease.id]
    assert [hold["resource"] for hold in response.context["holds"]] == ["customer:acme"]
    assert response.context["contention"][0]["resource"] == "inventory:sku-1"
    page = response.content.decode()
    assert f'id="lease-{lease.id}"' in page and "Force-release" in page


def test_force_release_is_an_event_with_the_human_and_reason(staff, inventory):
    lease = lock_acquire(actor=inventory.actor, resources=["inventory:sku-1"], ttl_seconds=60).lease
    response = staff.post(f"/locks/{lease.id}/force-release/", {"reason": "holder crashed"}, follow=True)
    assert response.status_code == 200
    assert f"Lease {lease.id} of inventory-1 on inventory:sku-1 force-released." in messages_of(response)
    assert Lease.objects.get(id=lease.id).release_reason == "force_released"
    event = last_event("lock.force_released")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "holder crashed")
    assert response.context["leases"] == []


def test_force_releasing_a_lease_that_already_ended_says_so(staff, inventory):
    lease = lock_acquire(actor=inventory.actor, resources=["inventory:sku-1"], ttl_seconds=60).lease
    staff.post(f"/locks/{lease.id}/force-release/", {"reason": "first"})
    response = staff.post(f"/locks/{lease.id}/force-release/", {"reason": "second"})
    assert response.status_code == 409
    assert "The lease had already ended." in response.content.decode()


def test_force_release_of_an_unknown_lease_is_404_with_a_message(staff, policies):
    response = staff.post("/locks/999/force-release/", {"reason": "x"})
    assert response.status_code == 404
    assert "no lease 999" in response.content.decode()


def test_place_hold_is_an_event_and_stops_agents_writing(staff, docs):
    response = staff.post("/locks/holds/", {"resource": "code:style", "reason": "release freeze"})
    assert response.status_code == 303
    hold = Hold.objects.get(resource="code:style", lifted_at=None)
    assert hold.placed_by == "human:olivia"
    event = last_event("hold.placed")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "release freeze")
    refused = docs.client.put(
        "/api/v1/memories/code:style/guide/", json.dumps({"content": {"a": 1}}), content_type="application/json"
    )
    assert refused.status_code == 423


def test_lift_hold_is_an_event_with_the_human_and_reason(staff, docs):
    hold, _ = hold_place(actor=staff.actor, resource="code:style", reason="freeze")
    response = staff.post(f"/locks/holds/{hold.id}/lift/", {"reason": "release shipped"})
    assert response.status_code == 303
    assert Hold.objects.get(id=hold.id).lifted_by == "human:olivia"
    event = last_event("hold.lifted")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "release shipped")


def test_placing_a_second_hold_on_a_resource_is_refused(staff, policies):
    staff.post("/locks/holds/", {"resource": "code:style", "reason": "one"})
    response = staff.post("/locks/holds/", {"resource": "code:style", "reason": "two"})
    assert response.status_code == 409
    assert "already held" in response.content.decode()
    assert Hold.objects.filter(resource="code:style").count() == 1


def test_hold_on_an_invalid_resource_name_keeps_the_form(staff, policies):
    response = staff.post("/locks/holds/", {"resource": "no spaces allowed", "reason": "r"})
    assert response.status_code == 400
    assert "a resource name is" in response.content.decode()
    assert response.context["hold_form"]["resource"].value() == "no spaces allowed"
    assert not Hold.objects.exists()
