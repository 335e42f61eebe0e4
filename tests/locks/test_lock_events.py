"""Where lock and hold events are filed, and who sees them and the locks (issue 10's lock event
decision; issue 11's 500s on long names; issue 12's L1 and L2).

A multi-resource lock is still one event for one change: `namespace` is the first namespace its names
denote, `namespaces` lists every one of them when there are several, and the event is visible only
to callers who may read all of them; `resource` is blank (the names are in the lease state), so no
joined string can outgrow its column. A lock, a wait or a contention row is visible to an agent
only if it may read every namespace its names denote, or if it is its own: one rule for every name,
`memory:` or not."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from memoryhub.actors import SYSTEM
from memoryhub.asgi import application
from memoryhub.events.models import Event
from memoryhub.locks.models import LockResource
from memoryhub.memories.services import memory_put
from policies.services import policies_apply

from .conftest import error_of, lock, release

POLICIES = {
    "namespaces": [
        {"pattern": "shared:*", "readers": ["*"], "writers": ["*"]},
        {"pattern": "team:x:*", "readers": ["ra"], "writers": ["ra"]},
        {"pattern": "team:y:*", "readers": ["rb"], "writers": ["rb"]},
    ]
}
TWO_NAMESPACES = ["memory:shared:pub/k", "memory:team:y:secret/hidden-key2"]


@pytest.fixture
def teams(db, make_agent):
    policies_apply(actor=SYSTEM, document=POLICIES)
    return make_agent("a1", "ra"), make_agent("b1", "rb")


def seqs(persona, query: str = "") -> list[int]:
    response = getattr(persona, "client", persona).get(f"/api/v1/events/{query}")
    assert response.status_code == 200, response.content
    return [event["seq"] for event in response.json()["results"]]


@pytest.mark.django_db
def test_a_multi_namespace_lock_event_lists_every_namespace_and_no_joined_resource(teams):
    _, b1 = teams
    body = lock(b1, TWO_NAMESPACES).json()
    event = Event.objects.get(seq=body["seq"])
    assert (event.namespace, event.namespaces, event.resource) == ("shared:pub", ["shared:pub", "team:y:secret"], "")
    assert event.after["resources"] == TWO_NAMESPACES


@pytest.mark.django_db
def test_a_multi_namespace_lock_event_is_hidden_from_who_cannot_read_every_namespace(teams, human):
    a1, b1 = teams
    held = lock(b1, TWO_NAMESPACES).json()
    released = release(b1, held).json()
    mine = {held["seq"], released["seq"]}
    for query in ("", "?actor=b1", "?type=lock.*", "?namespace=shared:pub"):
        assert not mine & set(seqs(a1, query)), query
        assert mine <= set(seqs(b1, query)), query  # its own
        assert mine <= set(seqs(human, query)), query
    activity = a1.client.get("/api/v1/activity/?resource=shared:pub").json()
    assert not [event for event in activity["events"] if event["seq"] in mine]
    assert "hidden-key2" not in json.dumps(activity)
    seen = human.get("/api/v1/activity/?resource=shared:pub").json()
    assert mine <= {event["seq"] for event in seen["events"]}


@pytest.mark.django_db
def test_a_multi_resource_lock_in_one_readable_namespace_is_seen_by_its_readers(teams):
    a1, b1 = teams
    held = lock(b1, ["memory:shared:pub/a", "memory:shared:pub/b"]).json()
    event = Event.objects.get(seq=held["seq"])
    assert (event.namespace, event.namespaces, event.resource) == ("shared:pub", None, "")
    assert held["seq"] in seqs(a1, "?type=lock.*")
    activity = a1.client.get("/api/v1/activity/?resource=shared:pub/b").json()
    assert held["seq"] in {event["seq"] for event in activity["events"]}


@pytest.mark.django_db(transaction=True)
def test_the_socket_applies_the_same_rule(teams):
    a1, b1 = teams

    async def scenario() -> list[dict]:
        communicator = WebsocketCommunicator(
            application, "/ws/v1/events/", headers=[(b"authorization", f"Bearer {a1.token}".encode())]
        )
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        await database_sync_to_async(lambda: lock(b1, TWO_NAMESPACES))()
        await database_sync_to_async(memory_put)(actor=b1.actor, namespace="shared:pub", key="after", content={})
        received = [json.loads(await communicator.receive_from(timeout=5))]
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return received

    (frame,) = asyncio.run(scenario())
    assert frame["event"]["type"] == "memory.created"  # the lock event before it was never sent


@pytest.mark.django_db
def test_a_long_lock_name_without_a_slash_is_granted_and_filed_under_no_namespace(teams, human):
    _, b1 = teams
    name = "x" * 300  # no namespace is 300 characters: the event's namespace column holds 255
    body = lock(b1, [name]).json()
    event = Event.objects.get(seq=body["seq"])
    assert (event.namespace, event.resource) == ("", name)
    hold = human.post("/api/v1/holds/", {"resource": "y" * 600}, format="json")
    assert hold.status_code == 201, hold.content
    assert Event.objects.get(seq=hold.json()["seq"]).namespace == ""


@pytest.mark.django_db
def test_thirty_names_of_28_characters_are_one_lock_and_one_event(teams):
    _, b1 = teams
    names = [f"shared:pub/resource-{index:08d}" for index in range(30)]
    assert all(len(name) == 28 for name in names) and len(",".join(names)) > 600
    held = lock(b1, names)
    assert held.status_code == 201, held.content
    event = Event.objects.get(seq=held.json()["seq"])
    assert (event.resource, event.after["resources"]) == ("", sorted(names))
    assert release(b1, held.json()).status_code == 200
    again = lock(b1, [*names, *(f"shared:pub/more-{index:03d}" for index in range(20))])
    assert again.status_code == 201, again.content  # 50 names, the README's limit


@pytest.mark.django_db
def test_a_refused_lock_request_leaves_no_resource_rows(teams):
    _, b1 = teams
    error_of(lock(b1, [f"shared:pub/r-{index}" for index in range(51)]), 400, "invalid")
    error_of(lock(b1, ["shared:pub/ok", "bad name"]), 400, "invalid")
    error_of(lock(b1, ["memory:team:x:secret/k", "shared:pub/ok"]), 403, "forbidden")
    assert not LockResource.objects.exists()


@pytest.mark.django_db
def test_a_bare_lock_name_is_seen_only_by_readers_of_the_namespace_it_names(teams, human):
    a1, b1 = teams
    held = lock(b1, ["team:y:secret/Y-LOCKNAME"]).json()
    for query in ("", "?agent=b1", "?resource=team:y:secret/Y-LOCKNAME"):
        assert a1.client.get(f"/api/v1/locks/{query}").json()["results"] == [], query
        assert [lease["id"] for lease in b1.client.get(f"/api/v1/locks/{query}").json()["results"]] == [held["id"]]
        assert [lease["id"] for lease in human.get(f"/api/v1/locks/{query}").json()["results"]] == [held["id"]]
    error_of(a1.client.get(f"/api/v1/locks/{held['id']}/"), 404, "not_found")
    assert b1.client.get(f"/api/v1/locks/{held['id']}/").status_code == 200
    contention = a1.client.get("/api/v1/locks/contention/").json()["results"]
    assert "Y-LOCKNAME" not in json.dumps(contention)
    assert "Y-LOCKNAME" in json.dumps(human.get("/api/v1/locks/contention/").json())
    # The same name with its `memory:` prefix, and a lock in a namespace a1 may read, follow the same rule.
    prefixed = lock(b1, ["memory:team:y:secret/other"]).json()
    shared = lock(b1, ["shared:pub/visible"]).json()
    listed = [lease["id"] for lease in a1.client.get("/api/v1/locks/").json()["results"]]
    assert listed == [shared["id"]] and prefixed["id"] not in listed
