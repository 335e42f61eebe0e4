"""Personas for the dashboard: a staff user and a non-staff user with browser-like (session) clients,
and agents under the shared test policies."""

from __future__ import annotations

import pytest
from django.test import Client

from memoryhub.actors import Actor
from memoryhub.events.models import Event
from memoryhub.locks.waiting import notifier

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session", autouse=True)
def _stop_lock_listener(django_db_setup):
    """The PostgreSQL LISTEN thread (started by lock waits) must be gone before the test database is dropped."""
    yield
    notifier.stop_listener()


def _logged_in(django_user_model, username: str, *, is_staff: bool) -> Client:
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=is_staff)
    client = Client()
    client.force_login(user)
    client.user = user
    client.actor = Actor.for_user(user)
    return client


@pytest.fixture
def staff(db, django_user_model) -> Client:
    """A staff user (an overseer) logged in with a session."""
    return _logged_in(django_user_model, "olivia", is_staff=True)


@pytest.fixture
def nonstaff(db, django_user_model) -> Client:
    """A logged-in user without staff status: not an overseer."""
    return _logged_in(django_user_model, "bob", is_staff=False)


@pytest.fixture
def sales(policies, make_agent):
    return make_agent("sales-1", "sales")


@pytest.fixture
def support(policies, make_agent):
    return make_agent("support-1", "support")


@pytest.fixture
def inventory(policies, make_agent):
    return make_agent("inventory-1", "inventory")


@pytest.fixture
def docs(policies, make_agent):
    return make_agent("docs-1", "docs")


def last_event(type: str) -> Event:
    event = Event.objects.filter(type=type).order_by("-seq").first()
    assert event is not None, f"no {type} event"
    return event


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []
