"""Readability as one SQL condition on a namespace column, equal to `decide_read` for every name.

`decide_read` answers for one namespace; a query over many rows (search, a list, a scan at scale)
needs the same answer as a WHERE clause, so that rows the caller may not read are never ranked,
counted or limited over. A namespace is readable iff its most specific matching pattern lets the
caller read it, so for an actor the condition is:

    OR over the rules R that would let it read:
        matches(R) AND self-part is the caller (for `self`-only rules)
        AND NOT matches(R') for every more specific R' that would not (and may overlap R)

(a more specific rule that also lets it read needs no exclusion: its own term covers the name).
Each `matches` is an index range on the literal prefix of the glob (`LIKE 'p%'` on PostgreSQL, which
the `varchar_pattern_ops` index serves; `>= p AND < p'` on SQLite's binary order) with a regex
recheck only where the glob has a `*` before its end. Proven against decide_read by
tests/policies/test_readable.py (Hypothesis, random policy sets and names).
"""

from __future__ import annotations

import re

from django.db.models import Q

from memoryhub.actors import Actor

from .decide import NamespaceRule, PolicySet, role_allowed, specificity

# The characters a namespace may hold (memoryhub.memories.content.NAMESPACE_RE). A pattern whose
# literal text has any other character can match no stored namespace.
_NAME_CHARS = re.compile(r"^[A-Za-z0-9_.@:-]*$")
NOTHING = Q(pk__in=[])


def _literal_parts(pattern: str) -> list[str] | None:
    parts = pattern.split("*")
    return parts if all(_NAME_CHARS.match(part) for part in parts) else None


def _prefix_upper(prefix: str) -> str:
    # Every string starting with `prefix` sorts below this one in code point (binary) order; the
    # namespace alphabet is ASCII, so incrementing the last character never overflows.
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def prefix_q(prefix: str, *, field: str, vendor: str) -> Q:
    """Rows whose `field` starts with `prefix` (not empty), as a condition an index serves."""
    if vendor == "postgresql":
        # LIKE is case-sensitive there, exact for any collation, and indexed by varchar_pattern_ops.
        return Q(**{f"{field}__startswith": prefix})
    # SQLite's LIKE ignores case: a range on the binary order is exact and uses the index.
    return Q(**{f"{field}__gte": prefix, f"{field}__lt": _prefix_upper(prefix)})


def glob_q(pattern: str, *, field: str = "namespace", vendor: str) -> Q:
    """Rows whose `field` matches the glob `pattern` (`*` = any run of characters, `:` included)."""
    parts = _literal_parts(pattern)
    if parts is None:
        return NOTHING
    if len(parts) == 1:
        return Q(**{field: pattern})
    prefix = parts[0]
    # Never an empty Q(): Django drops those from | and ~, which would turn "every name" into none.
    condition = Q(**{f"{field}__isnull": False})
    if prefix:
        condition &= prefix_q(prefix, field=field, vendor=vendor)
    if len(parts) > 2 or parts[-1]:
        # A `*` before the end: the prefix range over-selects, the regex decides.
        regex = "^" + ".*".join(part.replace(".", "\\.") for part in parts) + "$"
        condition &= Q(**{f"{field}__regex": regex})
    return condition


def _self_glob(pattern: str, actor_id: str) -> str | None:
    """The glob of the namespaces whose `self` part (what the trailing `*` matched) is `actor_id`.

    decide_read takes the last group of a greedy match. With one `*` that is everything after the
    prefix. With more, the greedy groups put the literal before the last `*` at its rightmost
    occurrence, so the self part is `actor_id` iff the name is `<rest of pattern><literal><id>` and
    that literal occurs nowhere later in `<literal><id>`."""
    if not pattern.endswith("*"):
        return None
    parts = pattern.split("*")
    if len(parts) > 2:
        last_literal = parts[-2]
        tail = last_literal + actor_id
        if last_literal == "" or last_literal in tail[1:]:
            return None
    return pattern[:-1] + actor_id


def _may_overlap(a: str, b: str) -> bool:
    """False only when no name can match both globs (their literal prefixes or suffixes disagree)."""
    pa, pb = a.split("*"), b.split("*")
    prefix_a, prefix_b = pa[0], pb[0]
    if not (prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)):
        return False
    if len(pa) == 1 and len(pb) == 1:
        return a == b
    suffix_a, suffix_b = pa[-1] if len(pa) > 1 else a, pb[-1] if len(pb) > 1 else b
    return suffix_a.endswith(suffix_b) or suffix_b.endswith(suffix_a)


def governed_q(policies: PolicySet, rule: NamespaceRule, *, field: str = "namespace", vendor: str) -> Q:
    """Rows whose namespace's most specific policy (`namespace_rule`) is `rule`: its glob less every
    more specific pattern that may overlap it, as one condition, so a query limits over those rows only."""
    winners: dict[str, NamespaceRule] = {}
    for each in policies.namespaces:
        winners.setdefault(each.pattern, each)  # with duplicates best_match keeps the first
    if winners.get(rule.pattern) is not rule:
        return NOTHING
    condition = glob_q(rule.pattern, field=field, vendor=vendor)
    for stronger in winners:
        if specificity(stronger) > specificity(rule.pattern) and _may_overlap(rule.pattern, stronger):
            condition &= ~glob_q(stronger, field=field, vendor=vendor)
    return condition


def readable_q(policies: PolicySet, actor: Actor, *, field: str = "namespace", vendor: str) -> Q:
    """A condition on `field` true exactly for the namespaces `decide_read(policies, actor, ns)` allows."""
    if actor.kind in ("human", "system"):
        return Q()
    # One rule per pattern: with duplicates best_match keeps the first.
    rules: dict[str, NamespaceRule] = {}
    for rule in policies.namespaces:
        rules.setdefault(rule.pattern, rule)
    ordered = sorted(rules.values(), key=lambda rule: specificity(rule.pattern))
    # Per rule: does it let the actor read every name it wins ("all"), only its own ("self"), or none?
    grants = {}
    for rule in ordered:
        if role_allowed(rule.readers, actor, None):
            grants[rule.pattern] = "all"
        elif "self" in rule.readers:
            grants[rule.pattern] = "self"
        else:
            grants[rule.pattern] = "none"
    condition = NOTHING
    for index, rule in enumerate(ordered):
        grant = grants[rule.pattern]
        if grant == "none":
            continue
        if grant == "self":
            glob = _self_glob(rule.pattern, actor.id)
            if glob is None:
                continue
            term = glob_q(glob, field=field, vendor=vendor)
        else:
            term = glob_q(rule.pattern, field=field, vendor=vendor)
        for stronger in ordered[index + 1 :]:
            if grants[stronger.pattern] != "all" and _may_overlap(rule.pattern, stronger.pattern):
                term &= ~glob_q(stronger.pattern, field=field, vendor=vendor)
        condition |= term
    return condition
