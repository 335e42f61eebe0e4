"""The lock views read the usual bodies without a DRF serializer: what they get must be exactly what
the serializer returns (or the same 400) for every body."""

from types import SimpleNamespace

import pytest
from rest_framework.exceptions import ValidationError

from memoryhub.locks import api as lock_api

# The first four take the fast path.
LOCK_BODIES = [
    {"resources": ["a"], "ttl_seconds": 30},
    {"resources": ["b", "a", "a"], "mode": "shared", "ttl_seconds": 1, "wait_seconds": 2},
    {"resources": ["memory:inventory:sku-1/count"], "mode": "exclusive", "ttl_seconds": 86400, "wait_seconds": 0.5},
    {"resources": ["a"], "ttl_seconds": 30, "wait_seconds": 30},
    # Outside the fast path: coerced, trimmed or refused by the serializer.
    {"resources": [" a "], "ttl_seconds": 30},
    {"resources": ["a b"], "ttl_seconds": 30},
    {"resources": ["a"], "ttl_seconds": "30"},
    {"resources": ["a"], "ttl_seconds": 30.0},
    {"resources": ["a"], "ttl_seconds": True},
    {"resources": ["a"], "ttl_seconds": 0},
    {"resources": ["a"], "ttl_seconds": 86401},
    {"resources": ["a"], "ttl_seconds": 30, "wait_seconds": 31},
    {"resources": ["a"], "ttl_seconds": 30, "wait_seconds": -1},
    {"resources": ["a"], "ttl_seconds": 30, "wait_seconds": "2"},
    {"resources": ["a"], "ttl_seconds": 30, "wait_seconds": False},
    {"resources": ["a"], "ttl_seconds": 30, "mode": "EXCLUSIVE"},
    {"resources": ["a"], "ttl_seconds": 30, "mode": None},
    {"resources": [], "ttl_seconds": 30},
    {"resources": "a", "ttl_seconds": 30},
    {"resources": ["a"] * 51, "ttl_seconds": 30},
    {"resources": ["x" * 601], "ttl_seconds": 30},
    {"resources": ["a"]},
    {"resources": ["a"], "ttl_seconds": 30, "agent": "someone-else"},
    {},
]


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


@pytest.mark.parametrize("body", LOCK_BODIES)
def test_a_lock_body_reads_as_the_serializer_reads_it(body):
    fast, slow = outcome(lock_api._lock_body, lock_api.LockInput, body)
    assert fast == slow
    if isinstance(fast, dict):
        assert {key: type(value) for key, value in fast.items()} == {key: type(value) for key, value in slow.items()}


@pytest.mark.parametrize("body", [{}, {"reason": "done"}, {"reason": " done "}, {"reason": 3}, {"why": "x"}])
def test_a_release_body_reads_as_the_serializer_reads_it(body):
    fast, slow = outcome(lock_api._reason_body, lock_api.ReasonInput, body)
    assert fast == slow


def test_the_usual_bodies_need_no_serializer(monkeypatch):
    def no_serializer(*args):
        raise AssertionError("built a serializer")

    monkeypatch.setattr(lock_api, "_body", no_serializer)
    for body in LOCK_BODIES[:4]:
        lock_api._lock_body(SimpleNamespace(data=body))
    lock_api._reason_body(SimpleNamespace(data={}))
