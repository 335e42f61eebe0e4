"""readable_q (one SQL condition) agrees with decide_read (per name) on random policy sets and names."""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from memoryhub.actors import Actor
from memoryhub.context import Caller
from memoryhub.errors import Invalid
from memoryhub.memories.content import check_glob
from memoryhub.memories.models import Memory
from memoryhub.memories.selectors import memories_list
from policies.decide import NamespaceRule, PolicySet, decide_read, glob_to_regex, namespace_rule
from policies.readable import governed_q, readable_q

# A small alphabet so that patterns, names and agent ids overlap often (`a:b` vs `a:*` vs `*b`).
SEGMENTS = st.sampled_from(["a", "b", "ab", "x", "x.y", "a_b", "aXb"])
IDS = st.sampled_from(["a", "b", "ab", "x", "bot-1"])
ROLES = st.sampled_from(["r1", "r2"])


@st.composite
def names(draw) -> str:
    return ":".join(draw(st.lists(SEGMENTS, min_size=1, max_size=4)))


@st.composite
def patterns(draw) -> str:
    pieces = draw(st.lists(st.one_of(SEGMENTS, st.just("*"), IDS, st.just(":")), min_size=1, max_size=5))
    separator = draw(st.sampled_from([":", ""]))
    return separator.join(pieces)


READERS = st.lists(st.sampled_from(["*", "r1", "r2", "self", "other"]), max_size=2)
RULES = st.lists(st.builds(NamespaceRule, pattern=patterns(), readers=READERS.map(tuple)), max_size=6)


def _matching(q, rows: list[str]) -> set[str]:
    return set(Memory.objects.filter(q, namespace__in=rows).values_list("namespace", flat=True))


@pytest.mark.django_db
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rules=RULES,
    actor_id=IDS,
    role=ROLES,
    namespaces=st.lists(names(), min_size=1, max_size=12, unique=True),
    extra=st.lists(IDS, max_size=2),
)
# `self` takes the last group of a greedy match: for `*a*` and agent `a`, in `x:aa` it is "".
@example(rules=[NamespaceRule("*a*", readers=("self",))], actor_id="a", role="r1", namespaces=["x"], extra=[])
def test_readable_condition_equals_decide_read(rules, actor_id, role, namespaces, extra):
    # Names built from the agent's own id, so `self` rules have something to grant.
    own = {actor_id, f"x:{actor_id}", f"x:{actor_id}{actor_id}", f"{namespaces[0]}:{actor_id}"}
    namespaces = sorted(set(namespaces) | {f"a:{suffix}" for suffix in extra} | own)
    policies = PolicySet(namespaces=tuple(rules))
    actor = Actor(kind="agent", id=actor_id, role=role)
    expected = {name for name in namespaces if decide_read(policies, actor, name).allowed}
    now = timezone.now()
    with transaction.atomic():
        Memory.objects.bulk_create(
            Memory(namespace=name, key="k", created_by="t", updated_by="t", created_at=now, updated_at=now)
            for name in namespaces
        )
        got = _matching(readable_q(policies, actor, vendor=connection.vendor), namespaces)
        transaction.set_rollback(True)
    assert got == expected, (rules, actor)


@pytest.mark.django_db
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=RULES, namespaces=st.lists(names(), min_size=1, max_size=12, unique=True))
def test_governed_condition_equals_namespace_rule(rules, namespaces):
    policies = PolicySet(namespaces=tuple(rules))
    now = timezone.now()
    with transaction.atomic():
        Memory.objects.bulk_create(
            Memory(namespace=name, key="k", created_by="t", updated_by="t", created_at=now, updated_at=now)
            for name in namespaces
        )
        for rule in policies.namespaces:
            expected = {name for name in namespaces if namespace_rule(policies, name) is rule}
            got = _matching(governed_q(policies, rule, vendor=connection.vendor), namespaces)
            assert got == expected, (rules, rule)
        transaction.set_rollback(True)


def _valid_glob(pattern: str) -> bool:
    try:
        check_glob(pattern)
    except Invalid:
        return False
    return "*" in pattern


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rules=RULES,
    actor_id=IDS,
    role=ROLES,
    namespaces=st.lists(names(), min_size=1, max_size=10, unique=True),
    glob=st.one_of(st.none(), patterns().filter(_valid_glob)),
    limit=st.integers(min_value=1, max_value=4),
)
def test_memories_list_pages_equal_decide_read(rules, actor_id, role, namespaces, glob, limit):
    """The list endpoint's selector, paged through its cursors, returns exactly the rows decide_read
    allows (and the glob matches), each once, in order: readability and the glob are SQL, not a scan."""
    namespaces = sorted(set(namespaces) | {actor_id, f"x:{actor_id}"})
    policies = PolicySet(namespaces=tuple(rules))
    caller = Caller(kind="agent", id=actor_id, role=role, policies=policies)
    regex = re.compile(glob_to_regex(glob)) if glob else None
    expected = [
        (name, key)
        for name in namespaces
        for key in ("k1", "k2")
        if decide_read(policies, caller, name).allowed and (regex is None or regex.match(name))
    ]
    now = timezone.now()
    with transaction.atomic():
        Memory.objects.bulk_create(
            Memory(namespace=name, key=key, created_by="t", updated_by="t", created_at=now, updated_at=now)
            for name in namespaces
            for key in ("k1", "k2")
        )
        seen: list[tuple[str, str]] = []
        cursor = None
        while True:
            page, cursor = memories_list(actor=caller, namespace=glob, limit=limit, cursor=cursor)
            seen += [(m["namespace"], m["key"]) for m in page]
            if cursor is None:
                break
        transaction.set_rollback(True)
    assert seen == expected, (rules, caller.id, caller.role, glob)


@pytest.mark.django_db
def test_most_specific_pattern_wins_in_sql():
    policies = PolicySet(
        namespaces=(
            NamespaceRule("customer:*", readers=("sales",)),
            NamespaceRule("customer:vip:*", readers=("support",)),
            NamespaceRule("agent:private:*", readers=("self",)),
        )
    )
    now = timezone.now()
    rows = ["customer:acme", "customer:vip:acme", "agent:private:s1", "agent:private:s2", "code:x"]
    Memory.objects.bulk_create(
        Memory(namespace=n, key="k", created_by="t", updated_by="t", created_at=now, updated_at=now) for n in rows
    )
    sales = Actor(kind="agent", id="s1", role="sales")
    assert _matching(readable_q(policies, sales, vendor=connection.vendor), rows) == {
        "customer:acme",
        "agent:private:s1",
    }
    human = Actor(kind="human", id="h", role="human")
    assert _matching(readable_q(policies, human, vendor=connection.vendor), rows) == set(rows)
