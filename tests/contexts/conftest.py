"""Inbox personas: a support agent who sends, two sales agents who receive (one role, separate
receipts), an outsider of another role, a lead whose role may read every inbox by policy
(`inbox:*` readers: lead in TEST_POLICIES), and a human (the shared `human` fixture)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from contexts.models import ContextEntry
from memoryhub.events.models import Event
from tests.conftest import Persona


@dataclass
class Cast:
    sender: Persona
    alice: Persona
    bob: Persona
    outsider: Persona
    lead: Persona


@pytest.fixture
def cast(policies, make_agent) -> Cast:
    return Cast(
        sender=make_agent("support-1", "support"),
        alice=make_agent("sales-1", "sales"),
        bob=make_agent("sales-2", "sales"),
        outsider=make_agent("docs-1", "docs"),
        lead=make_agent("lead-1", "lead"),
    )


@pytest.fixture
def send(cast):
    """POST contexts/ as a persona (the sender by default); asserts 201 and returns the body."""

    def _send(by: Persona | None = None, **body):
        body.setdefault("context_type", "escalation")
        body.setdefault("content", {"customer": "acme", "status": "at_risk"})
        if "to_agent" not in body:
            body.setdefault("to_role", "sales")
        response = (by or cast.sender).client.post("/api/v1/contexts/", body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    return _send


def events_of(type_: str, entry_id: int | None = None) -> list[Event]:
    queryset = Event.objects.filter(type=type_)
    if entry_id is not None:
        queryset = queryset.filter(resource=f"context:{entry_id}")
    return list(queryset.order_by("seq"))


def entry_count() -> int:
    return ContextEntry.objects.count()
