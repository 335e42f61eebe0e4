"""Admin: read-only lists; the force-release and lift actions go through the services."""

import pytest

from memoryhub.events.models import Event
from memoryhub.locks.models import Hold, Lease
from memoryhub.locks.services import hold_place

from .conftest import lock

pytestmark = pytest.mark.django_db


def test_admin_force_release_action_releases_through_the_service(inventory, admin_client):
    lease = lock(inventory, ["pricing-table"]).json()
    assert admin_client.get("/admin/locks/lease/").status_code == 200
    response = admin_client.post("/admin/locks/lease/", {"action": "force_release", "_selected_action": [lease["id"]]})
    assert response.status_code == 302
    assert Lease.objects.get(id=lease["id"]).release_reason == "force_released"
    event = Event.objects.get(type="lock.force_released")
    assert (event.actor_kind, event.actor_id) == ("human", "admin")


def test_admin_lift_action_lifts_holds(admin_client, django_user_model):
    from memoryhub.actors import Actor

    user = django_user_model.objects.get(username="admin")
    hold, _ = hold_place(actor=Actor.for_user(user), resource="inventory:sku-1", reason="audit")
    assert admin_client.get("/admin/locks/hold/").status_code == 200
    admin_client.post("/admin/locks/hold/", {"action": "lift", "_selected_action": [hold.id]})
    assert Hold.objects.get(id=hold.id).lifted_by == "human:admin"
    assert Event.objects.filter(type="hold.lifted").count() == 1


def test_leases_cannot_be_edited_in_admin(inventory, admin_client):
    lease = lock(inventory, ["pricing-table"]).json()
    assert admin_client.get("/admin/locks/lease/add/").status_code == 403
    response = admin_client.post(f"/admin/locks/lease/{lease['id']}/change/", {"depth": 5})
    assert response.status_code == 403
    assert Lease.objects.get(id=lease["id"]).depth == 1
