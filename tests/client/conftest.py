"""The client against a REAL hub: the session's daphne on the test database (committed data, hence
transactional tests), agents made with the shared `make_agent` fixture."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from memoryhub.client import HubClient


@pytest.fixture
def hub_url(hub_server):
    return hub_server


@pytest.fixture
def connect(hub_url, policies, make_agent):
    """connect(agent_id, role) -> a HubClient acting as a new agent of that role (closed afterwards)."""
    clients: list[HubClient] = []

    def make(agent_id: str, role: str, **options) -> HubClient:
        persona = make_agent(agent_id, role)
        client = HubClient(hub_url, token=persona.token, **options)
        client.persona = persona
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def run_threads(target, count: int) -> list[BaseException]:
    """Run target(i) in `count` threads at once; return what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def wrapper(index: int) -> None:
        try:
            start.wait()
            target(index)
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def eventually(condition, timeout: float = 10.0) -> bool:
    """Poll `condition` until true (False after `timeout`): for state another process changes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
