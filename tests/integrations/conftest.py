"""The integrations against a REAL hub: the session's daphne on the test database (committed data,
hence transactional tests), each framework's own classes driving them."""

from __future__ import annotations

import os
import uuid

import pytest

from memoryhub.client import AsyncHubClient, HubClient

# Frameworks that cannot share the main environment (openai-agents pins websockets<17; crewai pins mcp<2
# and openai<3): their tests run in virtualenvs of their own (`make test-openai-agents`, `make
# test-crewai`, which set MEMORYHUB_REQUIRE_<EXTRA>=1).
SEPARATE_ENVIRONMENT = {"crewai", "openai-agents"}


def require(module: str, extra: str):
    """The framework, or a skip locally. In CI (CI=true) a missing framework fails the run, so the
    integration tests never go quietly unrun; those in SEPARATE_ENVIRONMENT only where MEMORYHUB_REQUIRE_<EXTRA>=1."""
    try:
        return pytest.importorskip(module, reason=f"pip install memoryhub[{extra}]")
    except pytest.skip.Exception:
        flag = "MEMORYHUB_REQUIRE_" + extra.upper().replace("-", "_")
        in_ci = os.environ.get("CI") == "true" and extra not in SEPARATE_ENVIRONMENT
        if in_ci or os.environ.get(flag) == "1":
            pytest.fail(f"the {extra} extra must be installed here ({module} is missing)", pytrace=False)
        raise


@pytest.fixture
def hub_url(hub_server):
    return hub_server


@pytest.fixture
def agent(hub_url, policies, make_agent):
    """agent(agent_id, role) -> a HubClient acting as a new agent of that role (closed afterwards);
    `.persona.token` is its token."""
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


@pytest.fixture
def async_agent(agent, hub_url):
    """async_agent(agent_id, role) -> an AsyncHubClient as a new agent (close it with aclose)."""

    def make(agent_id: str, role: str, **options) -> AsyncHubClient:
        token = agent(agent_id, role).persona.token
        return AsyncHubClient(hub_url, token=token, **options)

    return make


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"
