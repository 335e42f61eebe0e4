"""The fencing story, end to end through the REST API (SCENARIOS 1 and 6): an agent whose lease lapsed
while it stalled cannot overwrite the work of the agent that took over."""

import json

import pytest

from memoryhub.memories.models import Memory

from .conftest import error_of, lapse, lock

pytestmark = pytest.mark.django_db

LOCK = "memory:inventory:sku-1/count"
URL = "/api/v1/memories/inventory:sku-1/count/"


def write(persona, content, token=None):
    headers = {"HTTP_X_FENCING_TOKEN": str(token)} if token is not None else {}
    return persona.client.put(URL, json.dumps({"content": content}), content_type="application/json", **headers)


def test_a_stalled_holder_cannot_overwrite_the_agent_that_took_over(inventory, orders):
    a = lock(inventory, [LOCK], ttl=30).json()
    assert write(inventory, {"units": 5}, a["fencing_token"]).status_code == 201

    lapse(a["id"])  # A stalls past its lease (a GC pause, a slow network...)

    b = lock(orders, [LOCK], ttl=30).json()
    assert b["fencing_token"] > a["fencing_token"]
    assert write(orders, {"units": 2}, b["fencing_token"]).status_code == 200

    late = write(inventory, {"units": 4}, a["fencing_token"])
    details = error_of(late, 409, "stale_fencing_token")
    assert details == {"presented": a["fencing_token"], "current": b["fencing_token"]}
    memory = Memory.objects.get(namespace="inventory:sku-1", key="count")
    assert memory.content == {"units": 2}
    assert memory.updated_by == "orders-1"


def test_writing_a_locked_namespace_without_the_lock_is_423(inventory):
    error_of(write(inventory, {"units": 5}), 423, "held")
    error_of(write(inventory, {"units": 5}, 12345), 423, "held")


def test_tokens_issued_before_they_were_lease_ids_stay_below_new_ones(inventory):
    """Migration locks.0003: fencing tokens used to be event seqs, larger than lease ids. It moves the
    lease ids past every token issued or used, so a new grant's token is still the highest."""
    import importlib
    from types import SimpleNamespace

    from django.db import connection
    from django.utils import timezone

    from memoryhub.locks.models import Lease

    migration = importlib.import_module("memoryhub.locks.migrations.0003_fencing_token_is_lease_id")
    now = timezone.now()
    Lease.objects.create(
        agent_id="inventory-1", mode="exclusive", resources=["old"], fencing_token=5000, ttl_seconds=30,
        acquired_at=now, expires_at=now, released_at=now, release_reason="released",
    )  # fmt: skip
    migration.advance_lease_ids(None, SimpleNamespace(connection=connection))
    assert lock(inventory, ["memory:inventory:sku-1/count"]).json()["fencing_token"] > 5000
