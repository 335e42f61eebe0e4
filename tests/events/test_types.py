"""One registry of event types (memoryhub/events/types.py): the log refuses others, the dashboard's
filter offers every one, and docs/architecture.md lists every one."""

from pathlib import Path

import pytest
from django.db import transaction

from memoryhub.actors import SYSTEM
from memoryhub.dashboard.selectors import event_types
from memoryhub.events.models import Event
from memoryhub.events.services import event_append, event_record
from memoryhub.events.types import EVENT_TYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


@pytest.mark.django_db
def test_the_log_refuses_a_type_not_in_the_registry():
    with pytest.raises(ValueError, match="not an event type"), transaction.atomic():
        event_append(actor=SYSTEM, type="memory.misspelt", namespace="ns")
    with pytest.raises(ValueError, match="not an event type"):
        event_record(actor=SYSTEM, type="conflict.rejectd", namespace="ns")
    assert not Event.objects.exists()
    with transaction.atomic():
        event_append(actor=SYSTEM, type="memory.created", namespace="ns")
    assert Event.objects.count() == 1


def test_the_dashboard_filter_offers_every_type_and_each_family():
    offered = event_types()
    assert set(EVENT_TYPES) <= set(offered)
    assert {"agent.token_created", "agent.token_revoked", "agent.*", "lock.*", "memory.*"} <= set(offered)
    assert len(offered) == len(set(offered))


def test_the_architecture_doc_lists_every_type():
    text = DOC.read_text()
    missing = [name for name in EVENT_TYPES if f"`{name}`" not in text]
    assert not missing, f"docs/architecture.md does not list {missing}"
