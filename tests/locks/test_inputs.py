"""Lock request bodies are validated once, by `services.lock_request` (the REST view only checks the
body's shape): what it accepts, how it reads it, and the 400 for everything else. The release body
keeps its serializer-free fast path, which must read as the serializer does."""

from types import SimpleNamespace

import pytest
from rest_framework.exceptions import ValidationError

from memoryhub.actors import Actor
from memoryhub.errors import Invalid
from memoryhub.locks import api as lock_api
from memoryhub.locks import services

AGENT = Actor(kind="agent", id="w1", role="worker")
INVALID = "invalid"

# body -> (names, mode, ttl_seconds, wait_seconds) as read, or INVALID (a 400).
LOCK_BODIES = [
    ({"resources": ["a"], "ttl_seconds": 30}, (["a"], "exclusive", 30, 0)),
    (
        {"resources": ["b", "a", "a"], "mode": "shared", "ttl_seconds": 1, "wait_seconds": 2},
        (["a", "b"], "shared", 1, 2),
    ),
    ({"resources": ["a"], "ttl_seconds": 86400, "wait_seconds": 0.5}, (["a"], "exclusive", 86400, 0.5)),
    ({"resources": ["a"], "ttl_seconds": 30, "wait_seconds": 30}, (["a"], "exclusive", 30, 30)),
    ({"resources": ["a"], "ttl_seconds": "30"}, (["a"], "exclusive", 30, 0)),
    ({"resources": ["a"], "ttl_seconds": 30.0}, (["a"], "exclusive", 30, 0)),
    ({"resources": ["a"], "ttl_seconds": 30, "wait_seconds": "2"}, (["a"], "exclusive", 30, 2.0)),
    ({"resources": [" a "], "ttl_seconds": 30}, INVALID),
    ({"resources": ["a b"], "ttl_seconds": 30}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 30.5}, INVALID),
    ({"resources": ["a"], "ttl_seconds": True}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 0}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 86401}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 30, "wait_seconds": 31}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 30, "wait_seconds": -1}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 30, "wait_seconds": "NaN"}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 30, "wait_seconds": False}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 30, "mode": "EXCLUSIVE"}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 30, "mode": None}, INVALID),
    ({"resources": [], "ttl_seconds": 30}, INVALID),
    ({"resources": "a", "ttl_seconds": 30}, INVALID),
    ({"resources": ["a"] * 51, "ttl_seconds": 30}, INVALID),
    ({"resources": ["x" * 601], "ttl_seconds": 30}, INVALID),
    ({"resources": ["a"]}, INVALID),
    ({"resources": ["a"], "ttl_seconds": 30, "agent": "someone-else"}, INVALID),
    ({}, INVALID),
    ([], INVALID),
]


@pytest.mark.parametrize(("body", "expected"), LOCK_BODIES)
def test_a_lock_body_is_read_or_refused_by_the_one_validator(body, expected):
    try:
        fields = lock_api._lock_fields(SimpleNamespace(data=body))
        request = services.lock_request(actor=AGENT, **fields)
    except Invalid:
        assert expected == INVALID
        return
    read = (request.names, request.mode, request.ttl_seconds, request.wait_seconds)
    assert read == expected
    assert [type(value) for value in read[2:]] == [type(value) for value in expected[2:]]


def outcome(read, serializer_class, body):
    request = SimpleNamespace(data=body)
    try:
        fast = dict(read(request))
    except ValidationError as exc:
        fast = exc.detail
    try:
        serializer = serializer_class(data=body)
        serializer.is_valid(raise_exception=True)
        slow = dict(serializer.validated_data)
    except ValidationError as exc:
        slow = exc.detail
    return fast, slow


TOKEN = "t0ken-of-the-holder_32-characters"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": "done"},
        {"reason": " done "},
        {"reason": 3},
        {"why": "x"},
        {"reason": "", "holder_token": TOKEN},
        {"holder_token": TOKEN},
        {"reason": "done", "holder_token": TOKEN},
        {"reason": "", "holder_token": None},
        {"reason": "", "holder_token": "short"},
        {"reason": "", "holder_token": TOKEN + "\n"},
        {"reason": "", "holder_token": f" {TOKEN}"},
        {"reason": "", "holder_token": 12345678901234567890},
        {"reason": None, "holder_token": TOKEN},
    ],
)
def test_a_release_body_reads_as_the_serializer_reads_it(body):
    fast, slow = outcome(lock_api._release_body, lock_api.ReleaseInput, body)
    assert fast == slow


def test_the_usual_bodies_need_no_serializer(monkeypatch):
    def no_serializer(*args):
        raise AssertionError("built a serializer")

    monkeypatch.setattr(lock_api, "validated", no_serializer)
    lock_api._release_body(SimpleNamespace(data={}))
    lock_api._release_body(SimpleNamespace(data={"reason": "", "holder_token": TOKEN}))
