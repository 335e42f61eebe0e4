"""policy_set() reloads the policies only when the newest policy change moved, also before any."""

import pytest

from memoryhub.actors import SYSTEM
from policies.decide import decide_write
from policies.selectors import policy_set
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES

pytestmark = pytest.mark.django_db


def test_before_any_policy_change_the_empty_set_is_cached_too(django_assert_num_queries):
    policy_set()
    with django_assert_num_queries(1):  # the position only; no reload of the three tables
        assert policy_set().namespaces == ()


def test_a_change_is_seen_by_the_next_call(django_assert_num_queries, make_agent):
    agent = make_agent("docs-1", "docs")
    assert policy_set().namespaces == ()
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)
    assert decide_write(policy_set(), agent.actor, "code:style").allowed
    with django_assert_num_queries(1):
        policy_set()


def test_a_token_lookup_outside_a_request_leaves_no_position_behind(make_agent):
    """The position read with a token serves the rest of that request only: looked up outside one
    (a command, a test, a thread), it must not pin this thread to the policies of that moment."""
    from memoryhub.agents.authentication import agent_for_token

    agent = make_agent("docs-1", "docs")
    assert policy_set().namespaces == ()
    assert agent_for_token(agent.token) is not None
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)
    assert decide_write(policy_set(), agent.actor, "code:style").allowed
