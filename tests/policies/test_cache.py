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
