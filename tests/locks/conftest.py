import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from memoryhub.locks.models import Lease
from memoryhub.locks.waiting import notifier


@pytest.fixture(scope="session", autouse=True)
def _stop_lock_listener(django_db_setup):
    """The PostgreSQL LISTEN thread must be gone before the test database is dropped."""
    yield
    notifier.stop_listener()


@pytest.fixture
def inventory(policies, make_agent):
    return make_agent("inventory-1", "inventory")


@pytest.fixture
def orders(policies, make_agent):
    return make_agent("orders-1", "orders")


@pytest.fixture
def docs(policies, make_agent):
    return make_agent("docs-1", "docs")


def lock(persona_or_client, resources, *, mode="exclusive", ttl=30, wait=None, key=None, holder_token=None):
    client = getattr(persona_or_client, "client", persona_or_client)
    body = {"resources": resources, "mode": mode, "ttl_seconds": ttl}
    if wait is not None:
        body["wait_seconds"] = wait
    if holder_token is not None:
        body["holder_token"] = holder_token
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/v1/locks/", json.dumps(body), content_type="application/json", **headers)


def _proof(lease, body: dict) -> tuple[int, dict]:
    """A lease (the acquisition's answer) or a bare id: the answer's holder_token goes with it, as
    the client sends it, unless the test says otherwise."""
    if isinstance(lease, dict):
        return lease["id"], {"holder_token": lease["holder_token"]} | body
    return lease, body


def release(persona_or_client, lease, **body):
    client = getattr(persona_or_client, "client", persona_or_client)
    lease_id, body = _proof(lease, body)
    return client.delete(f"/api/v1/locks/{lease_id}/", json.dumps(body), content_type="application/json")


def heartbeat(persona_or_client, lease, **body):
    client = getattr(persona_or_client, "client", persona_or_client)
    lease_id, body = _proof(lease, body)
    return client.post(f"/api/v1/locks/{lease_id}/heartbeat/", json.dumps(body), content_type="application/json")


def error_of(response, status: int, code: str) -> dict:
    """Asserts the spec's error shape and returns its details."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["details"]


def lapse(lease_id: int) -> None:
    """The holder stalled past its lease: move the expiry into the past instead of sleeping."""
    Lease.objects.filter(id=lease_id).update(expires_at=timezone.now() - timedelta(seconds=1))


def run_threads(target, count: int, timeout: float = 120) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapper(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return errors
