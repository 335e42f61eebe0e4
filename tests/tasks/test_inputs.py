"""The task views read the usual bodies without a DRF serializer: what they get must be exactly what
the serializer returns (or the same 400) for every body."""

from types import SimpleNamespace

import pytest
from rest_framework.exceptions import ValidationError

from memoryhub.tasks import api as task_api

# The first four take the fast path.
CLAIM_BODIES = [
    {},
    {"ttl_seconds": 60},
    {"role": "worker", "kinds": ["index", "render"], "ttl_seconds": 5},
    {"kinds": []},
    {"role": " worker", "ttl_seconds": 5},
    {"role": "", "ttl_seconds": 5},
    {"role": "w\x00", "ttl_seconds": 5},
    {"kinds": ["index "]},
    {"kinds": "index"},
    {"kinds": ["k"] * 51},
    {"kinds": ["k" * 101]},
    {"ttl_seconds": "60"},
    {"ttl_seconds": 0},
    {"ttl_seconds": None},
    {"ttl_seconds": 60, "priority": 1},
]

COMPLETE_BODIES = [{}, {"result": None}, {"result": {"pages": [1, 2]}}, {"result": "done"}, {"result": 1, "x": 2}]


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


@pytest.mark.parametrize("body", CLAIM_BODIES)
def test_a_claim_body_reads_as_the_serializer_reads_it(body):
    fast, slow = outcome(task_api._claim_body, task_api.TaskClaimInput, body)
    assert fast == slow


@pytest.mark.parametrize("body", COMPLETE_BODIES)
def test_a_completion_body_reads_as_the_serializer_reads_it(body):
    fast, slow = outcome(task_api._complete_body, task_api.TaskCompleteInput, body)
    assert fast == slow


def test_the_usual_bodies_need_no_serializer(monkeypatch):
    def no_serializer(*args):
        raise AssertionError("built a serializer")

    monkeypatch.setattr(task_api, "validated", no_serializer)
    for body in CLAIM_BODIES[:4]:
        task_api._claim_body(SimpleNamespace(data=body))
    for body in COMPLETE_BODIES[:4]:
        task_api._complete_body(SimpleNamespace(data=body))
