"""Shared fixtures: personas (agents with tokens, a human), policies, API clients.

The same suite runs on the embedded default (SQLite file) and, with DATABASE_URL/REDIS_URL set, on
PostgreSQL + Redis.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from memoryhub.actors import SYSTEM, Actor
from memoryhub.agents.services import agent_create
from policies.services import policies_apply

TEST_POLICIES = {
    "namespaces": [
        {"pattern": "code:*", "readers": ["*"], "writers": ["code-review", "docs"]},
        {
            "pattern": "customer:*",
            "readers": ["sales", "support", "product"],
            "writers": ["sales", "support", "product"],
        },
        {"pattern": "customer:vip:*", "readers": ["support"], "writers": ["support"]},
        {
            "pattern": "inventory:*",
            "readers": ["*"],
            "writers": ["inventory", "orders"],
            "write_mode": "locked",
        },
        {"pattern": "counter:*", "readers": ["*"], "writers": ["*"]},
        {"pattern": "scratch:*", "readers": ["*"], "writers": ["*"], "write_mode": "last_write_wins"},
        {"pattern": "small:*", "readers": ["*"], "writers": ["*"], "max_content_bytes": 100},
        {
            "pattern": "agent:private:*",
            "readers": ["self"],
            "writers": ["self"],
            "write_mode": "last_write_wins",
        },
        {"pattern": "task:*", "readers": ["*"], "writers": ["*"], "write_mode": "last_write_wins"},
        {"pattern": "inbox:*", "readers": ["lead"], "writers": []},
    ],
    "fields": [
        {"namespace": "customer:*", "field": "deal_stage", "owners": ["sales"]},
        {"namespace": "customer:*", "field": "health", "owners": ["support"]},
    ],
    "deference": [{"resource": "customer:*", "role": "sales", "defers_to": "support", "window_seconds": 300}],
}


class Persona:
    """An agent, its token and an API client already carrying the token."""

    def __init__(self, agent, token: str) -> None:
        self.agent = agent
        self.token = token
        self.id = agent.id
        self.role = agent.role
        self.actor = Actor.for_agent(agent)
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def __repr__(self) -> str:
        return f"<Persona {self.id} ({self.role})>"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    # Threads (test threads, database_sync_to_async) close their connections after each use, so
    # none is left open when the test database is dropped.
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if isinstance(pool, dict):
        # Tests run 20+ threads at once, each holding a connection until it ends.
        pool["max_size"] = 50


@pytest.fixture
def policies(db):
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)
    return TEST_POLICIES


@pytest.fixture
def make_agent(db):
    def make(agent_id: str, role: str) -> Persona:
        agent, token = agent_create(actor=SYSTEM, agent_id=agent_id, role=role)
        return Persona(agent, token)

    return make


@pytest.fixture
def human(db, django_user_model):
    """A staff user and an API client logged in with a session."""
    user = django_user_model.objects.create_user("alice", password="correct-horse-battery", is_staff=True)
    client = APIClient()
    client.force_login(user)
    client.user = user
    client.actor = Actor.for_user(user)
    return client


@pytest.fixture(scope="session")
def hub_server(django_db_setup, django_db_blocker):
    """One real daphne for the whole session, on the test database (tests that use it must commit
    their data: `django_db(transaction=True)`). Starting a server costs seconds; tests share this one
    unless they need to stop or reconfigure theirs."""
    from tests.servers import server

    with server(env={"MEMORYHUB_INPROCESS_SWEEPER": "false", "MEMORYHUB_WS_CATCHUP_SECONDS": "1"}) as url:
        yield url


def on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def db_label() -> str:
    return "postgresql" if on_postgres() else "sqlite"


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets its own channel layer instance: async tests run on a new event loop each, and a
    Redis layer keeps receive state bound to the loop that first used it."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fast_hashers(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEMORYHUB_RATE_LIMIT = os.environ.get("MEMORYHUB_TEST_RATE_LIMIT", "off")
    settings.MEMORYHUB_AUTH_FAILURE_LIMIT = "off"  # tests send bad tokens on purpose, all from one address
    settings.MEMORYHUB_INPROCESS_SWEEPER = False  # tests run sweepers explicitly


def pytest_collection_modifyitems(config, items):
    # Browser tests leave an event loop running (pytest-playwright's sync API): run them last.
    items.sort(key=lambda item: 1 if item.get_closest_marker("browser") else 0)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before a test's fixtures are torn down (a transactional test's tables flushed), the in-process
    embedder finishes the pass its writes woke: a flush racing its transaction deadlocks on
    PostgreSQL, and the next test then finds this one's rows."""
    from memoryhub.search.tasks import embeddings_idle

    embeddings_idle(timeout=30)
