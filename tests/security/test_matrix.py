"""Issue 12's matrix: every REST endpoint that names a namespace, a memory, a lock or a hold, and the
event socket, x {own namespace, other namespace, absent, write-only} x {agent, agent of another role,
human}. What a caller may not read must not show through: no content, key, resource name, reason,
count or holder, and no status or message that tells it apart from something absent.

The table `ENDPOINTS` is the list: each row is a request built from a place (namespace, lease id,
hold id). For each caller and place the test asserts
- readable (own for the agent, everything for the human): the planted secret shows (the table is
  not vacuous);
- hidden (neither readable nor, for this row, writable): the answer equals the answer for the
  absent place, once the place's names and ids are replaced by placeholders, and holds none of the
  place's secrets, its owner or its names beyond what the caller sent;
- write-only: none of the place's secrets (content, reasons, hold reasons, holder) show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from memoryhub.actors import SYSTEM, Actor
from memoryhub.asgi import application
from memoryhub.locks.models import Hold, Lease
from memoryhub.locks.services import hold_place, lock_acquire
from memoryhub.memories.services import memory_put
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES

pytestmark = pytest.mark.django_db

POLICIES = {
    **TEST_POLICIES,
    "namespaces": [
        *TEST_POLICIES["namespaces"],
        {"pattern": "team:a:*", "readers": ["a"], "writers": ["a"]},
        {"pattern": "team:y:*", "readers": ["y"], "writers": ["y"]},
        {"pattern": "drop:*", "readers": ["lead"], "writers": ["a", "lead"]},
    ],
}

# The places, each with its tag (in every secret planted there) and its owner.
PLACES = {
    "own": ("team:a:box", "OWN", "a-1"),
    "other": ("team:y:secret", "YYY", "y-owner-1"),
    "write-only": ("drop:box", "DROP", "drop-owner-1"),
}
# Beside each place, one holding nothing under the same policy: what "absent" answers there.
ABSENT = {"own": "team:a:nothing", "other": "team:y:nothing", "write-only": "drop:nothing"}


@dataclass
class Place:
    name: str
    namespace: str
    tag: str
    owner: str | None
    lease_id: int  # the owner's lease on memory:<namespace>/plan (absent: an id never drawn)
    named_lease_id: int  # ... on the non-memory lock name <namespace>/job
    hold_id: int  # a human's hold on <namespace>/held

    def secrets(self, *, writer: bool) -> list[str]:
        """What a caller who may not read the place must never be shown: its content and reasons, and
        (unless it may write there, and is told a memory's metadata as L5 decided) who works there."""
        return [f"{self.tag}-SECRET", *([self.owner] if self.owner and not writer else [])]


def _plant(namespace: str, tag: str, owner: Actor) -> tuple[int, int, int]:
    memory_put(
        actor=owner,
        namespace=namespace,
        key="plan",
        content={"plan": f"{tag}-SECRET-CONTENT"},
        reason=f"{tag}-SECRET-REASON",
    )
    lease = lock_acquire(actor=owner, resources=[f"memory:{namespace}/plan"], ttl_seconds=600).lease
    named = lock_acquire(actor=owner, resources=[f"{namespace}/job"], ttl_seconds=600).lease
    human = Actor(kind="human", id="alice", role="")
    hold, _ = hold_place(actor=human, resource=f"{namespace}/held", reason=f"{tag}-SECRET-HOLD")
    return lease.id, named.id, hold.id


@pytest.fixture
def world(db, make_agent, human):
    policies_apply(actor=SYSTEM, document=POLICIES)
    callers = {"agent": make_agent("a-1", "a"), "other role": make_agent("b-1", "b")}
    owners = {"a-1": callers["agent"], "y-owner-1": make_agent("y-owner-1", "y")}
    owners["drop-owner-1"] = make_agent("drop-owner-1", "lead")
    places = {}
    for name, (namespace, tag, owner) in PLACES.items():
        places[name] = Place(name, namespace, tag, owner, *_plant(namespace, tag, owners[owner].actor))
    top = max(Lease.objects.order_by("-id").values_list("id", flat=True)[0], Hold.objects.count())
    for offset, (name, namespace) in enumerate(ABSENT.items()):  # ids never drawn
        ids = (top + 1000 + 3 * offset, top + 1001 + 3 * offset, top + 1002 + 3 * offset)
        places[f"absent {name}"] = Place("absent", namespace, "ABSENT", None, *ids)
    clients: dict[str, APIClient] = {who: persona.client for who, persona in callers.items()}
    clients["human"] = human
    return clients, places, callers


def _body(response) -> str:
    return response.content.decode()


def _json(method: str, body: dict | None = None) -> Callable[[APIClient, str], object]:
    def send(client: APIClient, path: str):
        data = json.dumps(body) if body is not None else ""
        return getattr(client, method)(path, data, content_type="application/json")

    return send


def _get(client: APIClient, path: str):
    return client.get(path)


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: Callable[[Place], str]
    send: Callable[[APIClient, str], object] = _get
    # May a writer who cannot read (write-only) get another answer than "absent"? Writes may.
    writes: bool = False
    # A request that sends the place's names: the answer may repeat them. Lists send none.
    named: bool = True
    # Lock names that are no memory's may be locked by anyone: a lease another holds there answers
    # "held" (with no holder shown), whatever the caller may read (a lock cannot exclude unseen).
    contends: bool = False


def memory(suffix: str = "") -> Callable[[Place], str]:
    return lambda place: f"/api/v1/memories/{place.namespace}/plan/{suffix}"


ENDPOINTS = [
    Endpoint("memory get", memory()),
    Endpoint("memory get version", lambda p: f"/api/v1/memories/{p.namespace}/plan/?version=1"),
    Endpoint("memory history", memory("history/")),
    Endpoint("memory put", memory(), _json("put", {"content": {"n": 1}}), writes=True),
    Endpoint("memory put if-none-match", memory(), _json("put", {"content": {"n": 1}}), writes=True),
    Endpoint("memory patch", memory(), _json("patch", {"patch": {"n": 1}}), writes=True),
    Endpoint("memory delete", memory(), _json("delete"), writes=True),
    Endpoint("memory revert", memory("revert/"), _json("post", {"version": 1}), writes=True),
    Endpoint("memory verify", memory("verify/"), _json("post", {}), writes=True),
    Endpoint("memory put held", lambda p: f"/api/v1/memories/{p.namespace}/held/", _json("put", {"content": {}}), True),
    Endpoint("memory verify held", lambda p: f"/api/v1/memories/{p.namespace}/held/verify/", _json("post", {}), True),
    Endpoint("memory list", lambda p: f"/api/v1/memories/?namespace={p.namespace}"),
    Endpoint("memory list all", lambda p: "/api/v1/memories/", named=False),
    Endpoint("search", lambda p: f"/api/v1/search/?q=plan&mode=lexical&namespace={p.namespace}"),
    Endpoint("search all", lambda p: "/api/v1/search/?q=SECRET&mode=lexical", named=False),
    Endpoint("events by namespace", lambda p: f"/api/v1/events/?namespace={p.namespace}"),
    Endpoint("events by resource", lambda p: f"/api/v1/events/?resource={p.namespace}/plan"),
    Endpoint("events all", lambda p: "/api/v1/events/", named=False),
    Endpoint("locks list", lambda p: "/api/v1/locks/", named=False),
    Endpoint("locks by resource", lambda p: f"/api/v1/locks/?resource=memory:{p.namespace}/plan"),
    Endpoint("locks contention", lambda p: "/api/v1/locks/contention/", named=False),
    Endpoint("lease get", lambda p: f"/api/v1/locks/{p.lease_id}/"),
    Endpoint("lease release", lambda p: f"/api/v1/locks/{p.lease_id}/", _json("delete")),
    Endpoint("lease heartbeat", lambda p: f"/api/v1/locks/{p.lease_id}/heartbeat/", _json("post", {})),
    Endpoint("named lease get", lambda p: f"/api/v1/locks/{p.named_lease_id}/"),
    Endpoint("named lease release", lambda p: f"/api/v1/locks/{p.named_lease_id}/", _json("delete")),
    Endpoint(
        "lock memory",
        lambda p: "/api/v1/locks/",
        _json("post"),  # body set per place below
        writes=True,
    ),
    Endpoint("lock name", lambda p: "/api/v1/locks/", _json("post"), writes=True, contends=True),
    Endpoint("holds list", lambda p: "/api/v1/holds/?active=false", named=False),
    Endpoint("holds by resource", lambda p: f"/api/v1/holds/?resource={p.namespace}/held"),
    Endpoint("hold get", lambda p: f"/api/v1/holds/{p.hold_id}/"),
    Endpoint("hold lift", lambda p: f"/api/v1/holds/{p.hold_id}/", _json("delete", {})),
    Endpoint("hold place", lambda p: "/api/v1/holds/", _json("post"), writes=True),
    Endpoint("activity", lambda p: f"/api/v1/activity/?resource={p.namespace}/plan"),
    Endpoint("activity held", lambda p: f"/api/v1/activity/?resource={p.namespace}/held", writes=True),
]

# Bodies that name the place.
BODIES: dict[str, Callable[[Place], dict]] = {
    "memory put if-none-match": lambda p: {"content": {"n": 1}},
    "lock memory": lambda p: {"resources": [f"memory:{p.namespace}/plan"], "ttl_seconds": 5},
    "lock name": lambda p: {"resources": [f"{p.namespace}/job"], "ttl_seconds": 5},
    "hold place": lambda p: {"resource": f"{p.namespace}/other", "reason": "r"},
}
HEADERS = {"memory put if-none-match": {"HTTP_IF_NONE_MATCH": "*"}, "memory put": {"HTTP_IF_MATCH": '"1"'}}

# Keys whose values differ between two places for reasons of time or order, not of what is there.
VOLATILE = {"at", "placed_at", "expires_at", "acquired_at", "heartbeat_at", "until", "seq", "last_seq", "waited_ms"}
VOLATILE |= {"next_since", "created_at", "updated_at", "holder_token", "fencing_token", "id"}


def call(endpoint: Endpoint, client: APIClient, place: Place):
    path = endpoint.path(place)
    headers = HEADERS.get(endpoint.name, {})
    if endpoint.name in BODIES:
        method = {"memory put if-none-match": "put"}.get(endpoint.name, "post")
        return getattr(client, method)(
            path, json.dumps(BODIES[endpoint.name](place)), content_type="application/json", **headers
        )
    if headers:
        return client.put(path, json.dumps({"content": {"n": 1}}), content_type="application/json", **headers)
    return endpoint.send(client, path)


def normalised(response, place: Place) -> tuple[int, object]:
    """The answer with the place's names and ids as placeholders and time-dependent fields dropped."""
    text = _body(response)
    for value in (place.lease_id, place.named_lease_id, place.hold_id):
        text = re.sub(rf"\b{value}\b", "<id>", text)
    text = text.replace(place.namespace, "<ns>")

    def strip(value):
        if isinstance(value, dict):
            return {key: strip(item) for key, item in value.items() if key not in VOLATILE}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    try:
        body: object = strip(json.loads(text))
    except ValueError:
        body = text
    return response.status_code, body


def may_read(who: str, place: Place) -> bool:
    return who == "human" or (who == "agent" and place.name == "own")


def may_write(who: str, place: Place) -> bool:
    return may_read(who, place) or (who == "agent" and place.name == "write-only")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[endpoint.name for endpoint in ENDPOINTS])
def test_nothing_unreadable_shows_through(world, endpoint):
    clients, places, _ = world
    for who, client in clients.items():
        for place in (places["own"], places["other"], places["write-only"]):
            check(endpoint, who, client, place, places)


def check(endpoint: Endpoint, who: str, client: APIClient, place: Place, places: dict[str, Place]) -> None:
    response = call(endpoint, client, place)
    text = _body(response)
    assert response.status_code < 500, text
    if may_read(who, place):
        return  # what it may read, it is shown (the sanity test below checks a few)
    leaked = [secret for secret in place.secrets(writer=may_write(who, place)) if secret in text]
    assert not leaked, (place.name, leaked, text)
    if not endpoint.named:
        # A list sent no names: none of the place's may come back.
        assert place.namespace not in text, (place.name, text)
        return
    if may_write(who, place) and endpoint.writes:
        return  # a write it may make may answer otherwise than "absent" (without secrets)
    if endpoint.contends:
        # Held by someone it may not see: "held", and nothing of the holder.
        if response.status_code == 409:
            holders = response.json()["error"]["details"]["holders"]
            assert all(h["agent"] is None and h["lease_id"] is None for h in holders), text
        return
    # Hidden: the same answer as for nothing there.
    absent = places[f"absent {place.name}"]
    assert normalised(response, place) == normalised(call(endpoint, client, absent), absent), (place.name, text)


def test_the_matrix_is_not_vacuous(world):
    """Who may read a place is shown its secrets, by the same requests."""
    clients, places, _ = world
    own, other = places["own"], places["other"]
    by_name = {endpoint.name: endpoint for endpoint in ENDPOINTS}
    for who, place in (("agent", own), ("human", other)):
        for name in ("memory get", "memory history", "events by namespace", "holds by resource", "activity held"):
            response = call(by_name[name], clients[who], place)
            assert f"{place.tag}-SECRET" in _body(response), (who, name, _body(response))
        assert call(by_name["lease get"], clients[who], place).status_code == 200
        assert call(by_name["hold get"], clients[who], place).status_code == 200


async def _replay(persona, query: str) -> tuple[bool, int | None, str]:
    """Connect, then write a sentinel the caller may see: every frame before it is what the socket
    replays and sends (the log's order), the close code if it refuses."""
    communicator = WebsocketCommunicator(
        application, f"/ws/v1/events/?{query}", headers=[(b"authorization", f"Bearer {persona.token}".encode())]
    )
    connected, code = await communicator.connect(timeout=5)
    frames: list[str] = []
    if connected:
        await database_sync_to_async(memory_put)(
            actor=persona.actor, namespace="scratch:sentinel", key=persona.id, content={"n": 1}
        )
        while True:
            message = await communicator.receive_output(timeout=5)
            if message["type"] == "websocket.close":
                code = message.get("code")
                break
            if '"scratch:sentinel"' in message.get("text", ""):
                break
            frames.append(message.get("text", ""))
        await communicator.disconnect()
    return connected, code, "\n".join(frames)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["agent", "other role"])
def test_the_socket_shows_nothing_unreadable(world, who):
    from asgiref.sync import async_to_sync

    _, places, callers = world
    persona = callers[who]
    connected, _, frames = async_to_sync(_replay)(persona, "since=0")
    assert connected
    for place in places.values():
        if place.name == "absent" or may_read(who, place):
            continue
        secrets = place.secrets(writer=may_write(who, place))
        leaked = [secret for secret in [*secrets, place.namespace] if secret in frames]
        assert not leaked, (place.name, leaked)
    if who == "agent":
        assert "OWN-SECRET" in frames  # not vacuous
    # Subscribing to a namespace it may not read is refused as for one that holds nothing.
    hidden = async_to_sync(_replay)(persona, f"since=0&namespaces={places['other'].namespace}*")
    absent = async_to_sync(_replay)(persona, f"since=0&namespaces={places['absent other'].namespace}*")
    assert hidden[:2] == absent[:2] and not hidden[2] and not absent[2]


def test_every_route_with_a_place_is_in_the_table():
    """Every REST route naming a namespace, a memory, a lock or a hold has rows above; the others
    (agents, contexts addressed by agent or role, tasks by role, the schema) name none, and a new
    route must be put in one list or the other."""
    from django.urls import get_resolver

    routes = {str(pattern.pattern) for pattern in get_resolver().url_patterns[0].url_patterns}
    in_table = {
        "memories/", "memories/<str:namespace>/<str:key>/", "memories/<str:namespace>/<str:key>/history/",
        "memories/<str:namespace>/<str:key>/revert/", "memories/<str:namespace>/<str:key>/verify/", "events/", "search/", "locks/", "locks/contention/",
        "locks/<id:lease_id>/", "locks/<id:lease_id>/heartbeat/", "holds/", "holds/<id:hold_id>/", "activity/",
    }  # fmt: skip
    without_a_place = {
        "me/", "agents/", "agents/<str:agent_id>/resume/", "agents/<str:agent_id>/suspend/", "heartbeat/",
        "contexts/", "contexts/<id:entry_id>/", "contexts/<id:entry_id>/ack/", "contexts/<id:entry_id>/read/",
        "inbox/", "inbox/ack/", "tasks/", "tasks/<id:task_id>/", "tasks/<id:task_id>/cancel/",
        "tasks/<id:task_id>/complete/", "tasks/<id:task_id>/fail/", "tasks/<id:task_id>/heartbeat/",
        "tasks/<id:task_id>/requeue/", "tasks/claim/", "schema/", "docs/",
    }  # fmt: skip
    assert routes == in_table | without_a_place
