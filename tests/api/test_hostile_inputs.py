"""No input gets a 5xx: every endpoint of the API (enumerated from the URLconf, so a new one is covered
or fails here until it is given a valid body) is sent, in each body field, JSON value, key, query
parameter, path segment and header, what the database or the services cannot take: NUL, lone
surrogates, NaN/Infinity, nesting 10,000 deep, non-ASCII digits, integers past bigint, impossible
times, names ending in a newline, huge bodies. Each answer is a 4xx in the error shape, and a refused
request writes nothing (the event log is unchanged). Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver
from rest_framework.test import APIClient

from contexts.services import context_send
from memoryhub.api.permissions import IsHuman
from memoryhub.events.models import Event
from memoryhub.locks.api import _HumansWrite
from memoryhub.locks.services import hold_place, lock_acquire
from memoryhub.memories.services import memory_put
from memoryhub.tasks.services import task_claim, task_create
from memoryhub.urls import api_v1


class Raw:
    """A JSON fragment sent as written (json.dumps cannot write NaN as a literal, nor 10,000 levels)."""

    def __init__(self, text: str, label: str) -> None:
        self.text, self.label = text, label

    def __repr__(self) -> str:
        return self.label


def deep(levels: int, opener: str = "[", closer: str = "]") -> Raw:
    return Raw(opener * levels + "1" + closer * levels, f"nested {levels} deep")


def deep_object(levels: int) -> Raw:
    return Raw('{"a":' * levels + "1" + "}" * levels, f"object nested {levels} deep")


# Values no field can take: the answer must be a 4xx and nothing may be written.
ALWAYS_BAD: list[Any] = [
    "\x00",
    "ab\x00cd",
    Raw('"\\ud800"', "lone surrogate"),
    Raw('"x\\udfffy"', "lone low surrogate"),
    Raw("NaN", "NaN"),
    Raw("Infinity", "Infinity"),
    Raw("-Infinity", "-Infinity"),
    Raw("1e400", "1e400"),
    deep(10_000),
    deep_object(2_000),
    deep(150),
    Raw('{"a\\u0000": 1}', "NUL in a key"),
    Raw('{"\\ud800": 1}', "surrogate in a key"),
    Raw('{"ok": ["\\u0000"]}', "NUL deep inside"),
]
# Values some fields take and others refuse: never a 5xx; a refusal writes nothing.
MAYBE_BAD: list[Any] = [
    "x\n",
    "\n",
    "²",
    "٣",
    "x" * 5000,
    "",
    "  ",
    99999999999999999999,
    -99999999999999999999,
    2**63,
    -1,
    0,
    1.5,
    True,
    None,
    [],
    {},
    ["x\n"],
    [99999999999999999999],
    {"x": 1},
    "2020-13-45T00:00:00Z",
    "memory:scratch:a/k\n",
]
# Fields holding arbitrary JSON: probed inside too.
JSON_FIELDS = {"content", "payload", "result"}

QUERY_BAD = ["x\x00", "²", "٣", "99999999999999999999", "-99999999999999999999", "2020-13-45T00:00:00Z", "x\n"]
QUERY_BAD += ["x" * 3000, "-1", "1.5", ""]
RAW_QUERY_BAD = ["%FF", "%C3%28", "%ED%A0%80"]  # not UTF-8 (the last a surrogate's bytes)
PATH_BAD = ["x%00", "x%0A", "%0A", "²", "99999999999999999999", "x" * 300, "%FF", "-1", "0"]

WRITE_HEADERS_BAD: list[dict[str, str]] = [
    {"HTTP_IF_MATCH": '"²"'},
    {"HTTP_IF_MATCH": '"٣"'},
    {"HTTP_IF_MATCH": '"99999999999999999999"'},
    {"HTTP_IF_MATCH": "\x00"},
    {"HTTP_IF_NONE_MATCH": "x\x00"},
    {"HTTP_X_FENCING_TOKEN": "²"},
    {"HTTP_X_FENCING_TOKEN": "99999999999999999999"},
    {"HTTP_X_FENCING_TOKEN": "-5"},
    {"HTTP_IDEMPOTENCY_KEY": "k\x00"},
    {"HTTP_IDEMPOTENCY_KEY": "k" * 300},
    {"HTTP_X_REQUEST_ID": "r\x00"},
]
READ_HEADERS_BAD: list[dict[str, str]] = [
    {"HTTP_IF_NONE_MATCH": "\x00"},
    {"HTTP_X_REQUEST_ID": "\x00"},
    {"HTTP_AUTHORIZATION": "Bearer \x00"},
]

MEMORY = ("scratch:a", "k")


@dataclass
class World:
    agent: Any
    human: APIClient
    ids: dict[str, str]


@pytest.fixture
def world(policies, make_agent, human) -> World:
    worker = make_agent("worker-1", "worker")
    other = make_agent("other-1", "worker")
    memory_put(actor=worker.actor, namespace=MEMORY[0], key=MEMORY[1], content={"n": 1})
    task_create(actor=worker.actor, role="worker", kind="k", payload={})
    claimed = task_claim(actor=worker.actor, ttl_seconds=300)
    assert claimed is not None
    entry, _ = context_send(actor=other.actor, to_agent="worker-1", context_type="note", content={"a": 1})
    lease = lock_acquire(actor=worker.actor, resources=["scratch:lock"], ttl_seconds=300).lease
    hold, _ = hold_place(actor=human.actor, resource="scratch:held", reason="probe")
    return World(
        agent=worker,
        human=human,
        ids={
            "namespace": MEMORY[0],
            "key": MEMORY[1],
            "agent_id": "other-1",
            "task_id": str(claimed.task.id),
            "entry_id": str(entry.id),
            "lease_id": str(lease.id),
            "hold_id": str(hold.id),
        },
    )


# A valid body for every write (url name, method): the probes replace one field at a time.
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("heartbeat", "post"): {},
    ("agent-suspend", "post"): {"reason": "probe"},
    ("agent-resume", "post"): {"reason": "probe"},
    ("memory", "put"): {
        "content": {"n": 2},
        "kind": "working",
        "ttl_seconds": 60,
        "reason": "r",
        "valid_until": "2999-01-01T00:00:00Z",
        "supersedes": [],
    },
    ("memory", "patch"): {"content": {"n": 3}, "reason": "r"},
    ("memory", "delete"): {"reason": "r"},
    ("memory-revert", "post"): {"version": 1, "reason": "r"},
    ("memory-verify", "post"): {"reason": "r"},
    ("contexts", "post"): {
        "to_agent": "other-1",
        "context_type": "note",
        "subject": "scratch:a",
        "content": {"a": 1},
        "ttl_seconds": 60,
        "requires_ack": True,
    },
    ("context-read", "post"): {},
    ("context-ack", "post"): {"note": "ok"},
    ("inbox-ack", "post"): {"ids": [1], "note": "ok"},
    ("locks", "post"): {"resources": ["scratch:r1", "scratch:r2"], "mode": "exclusive", "ttl_seconds": 30},
    ("lock", "delete"): {"reason": "r"},
    ("lock-heartbeat", "post"): {"ttl_seconds": 30},
    ("holds", "post"): {"resource": "scratch:h2", "reason": "r"},
    ("hold", "delete"): {"reason": "r"},
    ("tasks", "post"): {"role": "worker", "kind": "k", "payload": {"a": 1}, "max_attempts": 2, "priority": 1},
    ("task-claim", "post"): {"role": "worker", "kinds": ["k"], "ttl_seconds": 30},
    ("task-heartbeat", "post"): {"ttl_seconds": 30},
    ("task-complete", "post"): {"result": {"ok": True}},
    ("task-fail", "post"): {"error": "e", "retry": True},
    ("task-requeue", "post"): {"reason": "r"},
    ("task-cancel", "post"): {"reason": "r"},
}
METHODS = ("get", "post", "put", "patch", "delete")


def _endpoints(patterns, prefix: str = "/api/v1/") -> list[tuple[str, str, type]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _endpoints(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
            if view is not None:
                found.append((pattern.name or "", prefix + str(pattern.pattern), view))
    return found


ENDPOINTS = [(name, route, view) for name, route, view in _endpoints(api_v1) if name not in ("schema", "docs")]
OPERATIONS = [
    pytest.param(name, route, view, method, id=f"{method.upper()} {name}")
    for name, route, view in ENDPOINTS
    for method in METHODS
    if hasattr(view, method)
]


def _path(route: str, ids: dict[str, str], replace: tuple[str, str] | None = None) -> str:
    path = route
    while "<" in path:
        start, end = path.index("<"), path.index(">")
        name = path[start + 1 : end].split(":")[-1]
        assert name in ids, f"no test value for the path parameter {name!r} of {route}: add it to World.ids"
        value = replace[1] if replace and replace[0] == name else ids[name]
        path = path[:start] + value + path[end + 1 :]
    return path


def _client(world: World, view: type, method: str):
    human_only = IsHuman in getattr(view, "permission_classes", ()) or (
        issubclass(view, _HumansWrite) and method != "get"
    )
    return world.human if human_only else world.agent.client


def _encode(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)


def _log_state() -> tuple[int, int]:
    last = Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    return Event.objects.count(), last


class Probe:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def send(self, client, method: str, path: str, *, body: str | None = None, must_refuse: bool, what: str, **headers):
        before = _log_state()
        kwargs: dict[str, Any] = dict(headers)
        if body is not None:
            kwargs.update(data=body, content_type="application/json")
        response = getattr(client, method)(path, **kwargs)
        status = response.status_code
        problem = None
        if status >= 500:
            problem = f"{status}"
        elif status >= 400:
            try:
                error = response.json()["error"]
                assert set(error) == {"code", "message", "details"} and error["code"] and error["message"]
            except Exception:
                problem = f"{status} not in the error shape: {response.content[:200]!r}"
            else:
                if _log_state() != before:
                    problem = f"{status} {error['code']} but the event log changed"
        elif must_refuse:
            problem = f"accepted ({status})"
        if problem:
            self.failures.append(f"{method.upper()} {path[:80]} {what}: {problem}")
        return response

    def check(self) -> None:
        assert not self.failures, f"{len(self.failures)} bad answers:\n" + "\n".join(self.failures[:60])


def _variants(valid: dict[str, Any]):
    """(description, body, must_refuse) for each probe in each field, and in the JSON fields' insides."""
    for bad in ALWAYS_BAD:
        yield f"body = {bad!r}", bad, True
    for field in valid:
        for bad in ALWAYS_BAD:
            yield f"{field} = {bad!r}", {**valid, field: bad}, True
        for maybe in MAYBE_BAD:
            yield f"{field} = {maybe!r}"[:80], {**valid, field: maybe}, False
        if field in JSON_FIELDS:
            for bad in ALWAYS_BAD:
                yield f"{field}.inner = {bad!r}", {**valid, field: {"inner": bad, "list": [1, {"x": bad}]}}, True
    for bad in ALWAYS_BAD[:4]:
        yield f"unknown field = {bad!r}", {**valid, "surprise": bad}, True
        yield f"a key = {bad!r}", {**valid, bad if isinstance(bad, str) else "\x00": 1}, True


@pytest.mark.parametrize("name,route,view,method", OPERATIONS)
def test_every_field_of_every_endpoint_refuses_what_cannot_be_stored(world, name, route, view, method):
    probe = Probe()
    client = _client(world, view, method)
    path = _path(route, world.ids)

    # Query parameters: every one the view reads (found in its source, so a new one is probed too).
    for param in sorted(_query_names(view)) if method == "get" else ["namespace"]:
        for value in QUERY_BAD:
            what = f"?{param}={value!r}"[:60]
            probe.send(client, method, f"{path}?{param}=" + _quote(value), must_refuse="\x00" in value, what=what)
        for raw in RAW_QUERY_BAD:
            probe.send(client, method, f"{path}?{param}={raw}", must_refuse=True, what=f"?{param}={raw}")

    # Path segments.
    for segment in [s.split(":")[-1] for s in _segments(route)]:
        for value in PATH_BAD:
            must = value in ("x%00",)
            bad_path = _path(route, world.ids, replace=(segment, value))
            body = _encode(VALID_BODIES.get((name, method), {})) if method != "get" else None
            probe.send(client, method, bad_path, body=body, must_refuse=must, what=f"<{segment}>={value!r}")

    headers_bad = READ_HEADERS_BAD if method == "get" else READ_HEADERS_BAD + WRITE_HEADERS_BAD
    for headers in headers_bad:
        must = any("\x00" in v for v in headers.values()) or headers.get("HTTP_IDEMPOTENCY_KEY", "").startswith("kkk")
        body = _encode(VALID_BODIES.get((name, method), {})) if method != "get" else None
        # A client's own credentials override a header passed per request: send a forged one bare.
        sender = APIClient() if "HTTP_AUTHORIZATION" in headers else client
        probe.send(sender, method, path, body=body, must_refuse=must, what=f"headers {headers!r}"[:80], **headers)

    if method != "get":
        assert (name, method) in VALID_BODIES, f"add a valid body for {method.upper()} {route} to VALID_BODIES"
        for what, body, must in _variants(VALID_BODIES[(name, method)]):
            probe.send(client, method, path, body=_encode(body), must_refuse=must, what=what)
    probe.check()


def _query_names(view: type) -> set[str]:
    source = inspect.getsource(view)
    names = set(re.findall(r'(?:query_params|params)\.get\(\s*"(\w+)"', source))
    names |= set(re.findall(r'_param\(\s*(?:request\.query_params|params)\s*,\s*"(\w+)"', source))
    return names | {"limit"}


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _segments(route: str) -> list[str]:
    out, rest = [], route
    while "<" in rest:
        start, end = rest.index("<"), rest.index(">")
        out.append(rest[start + 1 : end])
        rest = rest[end + 1 :]
    return out


@pytest.mark.parametrize("size", [3 * 2**20, 50 * 2**20])
def test_a_body_over_the_limit_is_413_in_the_error_shape(world, size):
    before = _log_state()
    body = '{"content": {"x": "' + "y" * size + '"}}'
    response = world.agent.client.put(f"/api/v1/memories/{MEMORY[0]}/big/", data=body, content_type="application/json")
    assert response.status_code == 413, response.content[:200]
    assert response.json()["error"]["code"] == "too_large"
    assert _log_state() == before


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/v1/memories/scratch:a%0A/k/", {"content": {}}),
        ("/api/v1/memories/scratch:a/k%0A/", {"content": {}}),
        ("/api/v1/locks/", {"resources": ["memory:scratch:a/k\n"], "ttl_seconds": 5}),
        ("/api/v1/holds/", {"resource": "scratch:a\n"}),
        ("/api/v1/tasks/", {"role": "worker\n", "kind": "k"}),
        ("/api/v1/contexts/", {"to_role": "worker\n", "context_type": "note", "content": {}}),
        ("/api/v1/contexts/", {"to_agent": "other-1", "context_type": "note\n", "content": {}}),
    ],
)
def test_names_ending_in_a_newline_make_no_twin(world, path, body):
    """`$` matches before a final newline: "ns:a\\n" would be a confusable twin of "ns:a". A name in
    the path is refused; one in a body field is refused or, like every DRF CharField, trimmed to the
    name it stands for."""
    client = world.human if path.startswith("/api/v1/holds/") else world.agent.client
    before = _log_state()
    method = client.put if "/memories/" in path else client.post
    response = method(path, data=json.dumps(body), content_type="application/json")
    if "/memories/" in path:
        assert response.status_code == 400, response.content
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "invalid"
        assert _log_state() == before
    else:
        assert response.status_code == 201, response.content
        assert "\\n" not in json.dumps(response.json()), response.content


def test_agent_ids_and_roles_ending_in_a_newline_are_refused(db):
    from memoryhub.actors import SYSTEM
    from memoryhub.agents.services import agent_create
    from memoryhub.errors import Invalid

    for agent_id, role in (("p1\n", "worker"), ("p1", "worker\n")):
        with pytest.raises(Invalid):
            agent_create(actor=SYSTEM, agent_id=agent_id, role=role)


def test_json_nested_within_the_limit_is_stored(world, settings):
    """The depth limit refuses only what is deeper than MEMORYHUB_MAX_JSON_DEPTH."""
    levels = settings.MEMORYHUB_MAX_JSON_DEPTH - 2  # the body and `content` are two levels
    content = '{"a":' * levels + "1" + "}" * levels
    response = world.agent.client.put(
        f"/api/v1/memories/{MEMORY[0]}/deep/",
        data='{"content": ' + content + "}",
        content_type="application/json",
    )
    assert response.status_code == 201, response.content[:300]


def test_escaped_text_that_is_storable_still_passes(world):
    """Escapes are fine when they decode to storable text: a paired surrogate is one character."""
    response = world.agent.client.put(
        f"/api/v1/memories/{MEMORY[0]}/emoji/",
        data='{"content": {"e": "\\ud83d\\ude00", "t": "tab\\tnewline\\n\\u00e9"}}',
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["content"] == {"e": "😀", "t": "tab\tnewline\né"}
