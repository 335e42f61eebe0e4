"""The pure decision module: one table of namespaces x roles, `self`, most specific wins, default deny."""

import pytest

from memoryhub.actors import Actor
from policies.decide import (
    FieldRule,
    NamespaceRule,
    PolicySet,
    changed_fields,
    decide_read,
    decide_write,
    field_violations,
    glob_match,
)

POLICIES = PolicySet(
    namespaces=(
        NamespaceRule("code:review", readers=("*",), writers=("code-review", "lead")),
        NamespaceRule("code:*", readers=("*",), writers=("docs",)),
        NamespaceRule("agent:private:*", readers=("self",), writers=("self",)),
        NamespaceRule("customer:*", readers=("sales", "support"), writers=("sales", "support")),
        NamespaceRule("customer:vip:*", readers=("support",), writers=()),
    ),
    fields=(
        FieldRule("customer:*", "deal_stage", ("sales",)),
        FieldRule("customer:vip:*", "deal_stage", ("support",)),
    ),
)


def agent(agent_id: str, role: str) -> Actor:
    return Actor(kind="agent", id=agent_id, role=role)


REVIEWER, DOCS, SALES, SUPPORT, LEAD = (
    agent("review-1", "code-review"),
    agent("docs-1", "docs"),
    agent("sales-1", "sales"),
    agent("support-1", "support"),
    agent("lead-1", "lead"),
)


@pytest.mark.parametrize(
    ("namespace", "actor", "can_read", "can_write"),
    [
        ("code:review", REVIEWER, True, True),
        ("code:review", DOCS, True, False),  # code:review is more specific than code:* and wins
        ("code:review", LEAD, True, True),
        ("code:style", DOCS, True, True),
        ("code:style", REVIEWER, True, False),
        ("code:style:deep:nesting", DOCS, True, True),  # * crosses segments
        ("agent:private:docs-1", DOCS, True, True),  # self
        ("agent:private:docs-1", agent("docs-2", "docs"), False, False),  # same role, not self
        ("agent:private:docs-1:notes", DOCS, False, False),  # the trailing * matched more than the id
        ("customer:acme", SALES, True, True),
        ("customer:acme", DOCS, False, False),
        ("customer:vip:acme", SALES, False, False),  # the more specific pattern denies
        ("customer:vip:acme", SUPPORT, True, False),
        ("billing:invoices", SALES, False, False),  # no policy matches: default deny
        ("code", DOCS, False, False),  # "code:*" needs the colon
        ("agent:private:p1", agent("evil", "self"), False, False),  # `self` is no role (issue 12, L6)
    ],
)
def test_policy_table(namespace, actor, can_read, can_write):
    assert decide_read(POLICIES, actor, namespace).allowed is can_read
    assert decide_write(POLICIES, actor, namespace).allowed is can_write


def test_default_deny_names_no_policy():
    decision = decide_write(POLICIES, SALES, "billing:invoices")
    assert not decision.allowed
    assert decision.details()["policy"] is None
    assert "default deny" in decision.reason


def test_denial_names_the_policy_that_denied():
    decision = decide_write(POLICIES, DOCS, "code:review")
    assert decision.details()["policy"]["pattern"] == "code:review"


@pytest.mark.parametrize("kind", ["human", "system"])
def test_humans_and_system_read_and_write_everything(kind):
    someone = Actor(kind=kind, id="alice", role=kind)
    for namespace in ("billing:invoices", "agent:private:docs-1", "customer:vip:acme"):
        assert decide_read(POLICIES, someone, namespace).allowed
        assert decide_write(POLICIES, someone, namespace).allowed


def test_empty_policy_set_denies_agents():
    assert not decide_read(PolicySet(), SALES, "anything").allowed


def test_glob_star_matches_within_and_across_segments():
    assert glob_match("a:*", "a:b")
    assert glob_match("a:*", "a:b:c")
    assert glob_match("*:b", "x:y:b")
    assert not glob_match("a:*", "ab")
    assert glob_match("a.b", "a.b") and not glob_match("a.b", "axb")  # no regex leaks


def test_field_ownership_refuses_other_roles_and_names_owners():
    assert field_violations(POLICIES, SUPPORT, "customer:acme", {"deal_stage", "notes"}) == {"deal_stage": ["sales"]}
    assert field_violations(POLICIES, SALES, "customer:acme", {"deal_stage"}) == {}


def test_most_specific_field_rule_wins():
    assert field_violations(POLICIES, SALES, "customer:vip:acme", {"deal_stage"}) == {"deal_stage": ["support"]}
    assert field_violations(POLICIES, SUPPORT, "customer:vip:acme", {"deal_stage"}) == {}


def test_unowned_fields_are_free_and_humans_change_anything():
    assert field_violations(POLICIES, SUPPORT, "customer:acme", {"notes"}) == {}
    human = Actor(kind="human", id="alice", role="human")
    assert field_violations(POLICIES, human, "customer:acme", {"deal_stage"}) == {}


def test_changed_fields_compares_top_level_keys():
    assert changed_fields({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b", "c"}
    assert changed_fields({"a": 1}, {}) == {"a"}
    assert changed_fields({"a": None}, {}) == {"a"}
