import json
from datetime import timedelta

import pytest
from django.utils import timezone

from memoryhub.tasks.models import Task


@pytest.fixture
def worker(policies, make_agent):
    return make_agent("worker-1", "worker")


@pytest.fixture
def worker2(policies, make_agent):
    return make_agent("worker-2", "worker")


@pytest.fixture
def docs(policies, make_agent):
    return make_agent("docs-1", "docs")


def post(persona_or_client, path, body=None, **headers):
    client = getattr(persona_or_client, "client", persona_or_client)
    return client.post(f"/api/v1/{path}", json.dumps(body or {}), content_type="application/json", **headers)


def create(persona_or_client, kind="index", role="worker", **body):
    return post(persona_or_client, "tasks/", {"role": role, "kind": kind, "payload": {"doc": kind}, **body})


def claim(persona, ttl=60, **body):
    return post(persona, "tasks/claim/", {"ttl_seconds": ttl, **body})


def complete(persona, task_id, result=None):
    return post(persona, f"tasks/{task_id}/complete/", {"result": result})


def lapse_claim(task_id: int) -> None:
    """The claimer stalled past its claim: move the expiry into the past instead of sleeping."""
    Task.objects.filter(id=task_id).update(claim_expires_at=timezone.now() - timedelta(seconds=1))


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return body["error"]["details"]
