"""A namespace an agent may write but not read (a drop box): its refusals, its responses and its own
events tell it versions and metadata, never content other writers put there (issue 12, L5)."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from memoryhub.actors import SYSTEM
from memoryhub.asgi import application
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory
from memoryhub.memories.services import memory_patch
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES

from .conftest import patch, put, url

SECRET = {"plan": "SECRET-PLAN", "owner_note": "SECRET-NOTE"}
DROP_POLICIES = {
    **TEST_POLICIES,
    "namespaces": [
        *TEST_POLICIES["namespaces"],
        # sales and support may drop things in; only lead reads them.
        {"pattern": "drop:*", "readers": ["lead"], "writers": ["sales", "support", "lead"]},
        {"pattern": "tiny:*", "readers": ["lead"], "writers": ["sales", "lead"], "max_content_bytes": 60},
    ],
    "fields": [*TEST_POLICIES["fields"], {"namespace": "drop:*", "field": "verdict", "owners": ["lead"]}],
}
METADATA = {
    *("namespace", "key", "kind", "version", "created_by", "updated_by", "created_at", "updated_at", "expires_at"),
    *("verified_at", "verified_by", "stale", "valid_until", "superseded_at", "archived_at"),
}


@pytest.fixture
def drop(db, make_agent):
    policies_apply(actor=SYSTEM, document=DROP_POLICIES)
    lead = make_agent("lead-1", "lead")
    writer = make_agent("sales-1", "sales")
    put(lead, "drop:box", "k", {**SECRET, "verdict": "SECRET-VERDICT"}, reason="SECRET-REASON")
    return lead, writer


def error(response):
    return response.json()["error"]


def no_secret(value) -> bool:
    return "SECRET" not in json.dumps(value)


def test_the_writer_cannot_read_the_drop_box(drop):
    _, writer = drop
    assert writer.client.get(url("drop:box", "k")).status_code == 404


@pytest.mark.parametrize("headers", [{"HTTP_IF_NONE_MATCH": "*"}, {"HTTP_IF_MATCH": '"7"'}])
def test_a_refused_write_tells_the_version_and_metadata_but_not_the_content(drop, headers):
    _, writer = drop
    response = writer.client.put(
        url("drop:box", "k"), json.dumps({"content": {"x": 1}}), content_type="application/json", **headers
    )
    assert response.status_code == 412
    body = error(response)
    assert body["code"] == "version_conflict"
    current = body["details"]["current"]
    assert set(current) == METADATA
    assert (current["version"], current["updated_by"]) == (1, "lead-1")
    assert no_secret(response.json())


def test_the_writers_own_conflict_record_carries_no_content(drop):
    lead, writer = drop
    put(writer, "drop:box", "k", {"x": 1}, version=7)
    refused = Event.objects.get(type="conflict.rejected")
    assert refused.actor_id == "sales-1" and no_secret(refused.after)
    assert refused.after["details"]["current"]["version"] == 1
    listed = writer.client.get("/api/v1/events/?type=conflict.rejected").json()["results"]
    assert [event["seq"] for event in listed] == [refused.seq] and no_secret(listed)


def test_a_reader_refused_still_gets_the_current_content(drop):
    lead, _ = drop
    response = put(lead, "drop:box", "k", {"x": 1}, version=7)
    assert error(response)["details"]["current"]["content"]["plan"] == "SECRET-PLAN"


def test_a_patch_answers_the_new_version_without_the_merged_content(drop):
    lead, writer = drop
    response = patch(writer, "drop:box", "k", {"mine": "hello"}, version=1)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == METADATA | {"seq"} and body["version"] == 2
    assert Memory.objects.get(namespace="drop:box").content == {**SECRET, "verdict": "SECRET-VERDICT", "mine": "hello"}
    # The reader sees everything, as before.
    assert lead.client.get(url("drop:box", "k")).json()["content"]["mine"] == "hello"


def test_a_put_answers_without_content_either(drop):
    _, writer = drop
    response = put(writer, "drop:box", "new", {"mine": 1}, reason="mine")
    assert response.status_code == 201
    assert set(response.json()) == METADATA | {"seq"}


def test_the_writers_own_write_events_carry_no_content(drop):
    lead, writer = drop
    seq = patch(writer, "drop:box", "k", {"mine": "hello"}, version=1).json()["seq"]
    mine = writer.client.get(f"/api/v1/events/?since={seq - 1}").json()["results"]
    assert [(event["type"], event["before"], event["after"]) for event in mine] == [("memory.updated", None, None)]
    assert mine[0]["version"] == 2 and mine[0]["resource"] == "drop:box/k"
    seen_by_lead = lead.client.get(f"/api/v1/events/?since={seq - 1}").json()["results"]
    assert seen_by_lead[0]["before"]["plan"] == "SECRET-PLAN"


@pytest.mark.django_db(transaction=True)
async def test_the_writers_own_write_reaches_its_socket_without_content(drop):
    lead, writer = drop
    communicator = WebsocketCommunicator(
        application, "/ws/v1/events/", headers=[(b"authorization", f"Bearer {writer.token}".encode())]
    )
    assert (await communicator.connect(timeout=5))[0]
    await database_sync_to_async(memory_patch)(
        actor=writer.actor, namespace="drop:box", key="k", patch={"mine": 1}, if_match=1
    )
    frame = json.loads(await communicator.receive_from(timeout=5))
    assert frame["event"]["type"] == "memory.updated" and frame["event"]["version"] == 2
    assert (frame["event"]["before"], frame["event"]["after"]) == (None, None)
    await communicator.disconnect()


def test_an_owned_field_cannot_be_probed_by_patching_a_guess(drop):
    """Field ownership refuses by what changed: a guess equal to the current value would change
    nothing and pass, confirming the guess. A writer that may not read is refused either way."""
    _, writer = drop
    right = patch(writer, "drop:box", "k", {"verdict": "SECRET-VERDICT"}, version=1)
    wrong = patch(writer, "drop:box", "k", {"verdict": "a guess"}, version=1)
    assert (right.status_code, error(right)["code"]) == (403, "field_not_owned")
    assert error(right) == error(wrong)
    assert Memory.objects.get(namespace="drop:box").version == 1


def test_a_replace_cannot_keep_an_owned_field_it_cannot_see(drop):
    _, writer = drop
    response = put(writer, "drop:box", "k", {"verdict": "SECRET-VERDICT"}, version=1)
    assert error(response)["code"] == "field_not_owned"
    assert put(writer, "drop:box", "fresh", {"note": 1}).status_code == 201  # a new memory has no hidden fields


def test_a_patch_over_the_size_limit_does_not_tell_the_merged_size(drop):
    lead, writer = drop
    put(lead, "tiny:box", "k", {"hidden": "x" * 40})
    response = patch(writer, "tiny:box", "k", {"a": "b"}, version=1)
    body = error(response)
    assert body["code"] == "too_large" and "size" not in body["details"]
    assert str(len(json.dumps({"hidden": "x" * 40, "a": "b"}, separators=(",", ":")))) not in body["message"]
