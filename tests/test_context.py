"""The request context (memoryhub/context.py): a Caller carries the policies and hold flag its
request started with, explicitly; a bare Actor means "as of now"."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from memoryhub.actors import SYSTEM
from memoryhub.errors import Forbidden
from memoryhub.locks.holds import hold_covering
from memoryhub.locks.models import Hold
from memoryhub.memories.services import memory_put
from policies.selectors import caller_for, policies_for
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES

pytestmark = pytest.mark.django_db

OPEN = {"namespaces": [{"pattern": "notes:*", "readers": ["*"], "writers": ["*"]}]}


def test_a_caller_keeps_the_policies_its_request_started_with(make_agent):
    agent = make_agent("docs-1", "docs")
    policies_apply(actor=SYSTEM, document=OPEN)
    caller = caller_for(agent.actor)
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)  # notes:* is gone now
    memory_put(actor=caller, namespace="notes:a", key="k", content={})  # as of its request's start
    with pytest.raises(Forbidden):
        memory_put(actor=agent.actor, namespace="notes:a", key="k2", content={})  # as of now
    assert policies_for(caller) is caller.policies
    assert caller_for(agent.actor).policies != caller.policies


def test_the_hold_flag_spares_the_query_only_while_no_hold_was_in_place(make_agent, django_assert_num_queries):
    agent = make_agent("docs-1", "docs")
    none_held = caller_for(agent.actor, any_hold=False)
    unknown = caller_for(agent.actor)
    hold = Hold.objects.create(resource="notes:a", placed_by="human:alice", placed_at=timezone.now())
    with django_assert_num_queries(0):
        assert hold_covering(actor=none_held, resources=["notes:a/k"]) is None
    with django_assert_num_queries(1):
        assert hold_covering(actor=unknown, resources=["notes:a/k"]) == hold
    with django_assert_num_queries(1):
        assert hold_covering(actor=agent.actor, resources=["memory:notes:a/k"]) == hold


def test_a_rest_request_hands_its_services_the_caller_its_token_lookup_built(make_agent):
    agent = make_agent("docs-1", "docs")
    policies_apply(actor=SYSTEM, document=OPEN)
    agent.client.put("/api/v1/memories/notes:a/k/", {"content": {}}, format="json")
    with CaptureQueriesContext(connection) as queries:
        response = agent.client.put(
            "/api/v1/memories/notes:a/k/", {"content": {"n": 1}}, format="json", HTTP_IF_MATCH='"1"'
        )
    assert response.status_code == 200, response.content
    statements = [query["sql"] for query in queries.captured_queries]
    # Only the token lookup reads the policy position and whether a hold is in place: the write is
    # given both in its Caller and asks neither again.
    assert len([sql for sql in statements if "policy.changed" in sql]) == 1
    assert len([sql for sql in statements if "locks_hold" in sql]) == 1
    assert all("agents_agenttoken" in sql for sql in statements if "policy.changed" in sql or "locks_hold" in sql)
