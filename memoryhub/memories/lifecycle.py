"""What the memory lifecycle decides about one memory (README "Memory lifecycle"): pure functions of
the row, the namespace's policy and the time, shared by reads, search, the sweepers and the dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from policies.decide import NamespaceRule, PolicySet, namespace_rule

from .models import Memory, MemoryKind

# How fast a memory's weight in search falls with the age of its last write (or verification), by
# kind, unless its namespace's policy sets `recency_half_life_seconds`: working memory matters for
# hours, episodes for days, facts for a month (CrewAI's recency half-life is 30 days too).
RECENCY_HALF_LIFE_SECONDS = {
    MemoryKind.WORKING: 3600,
    MemoryKind.EPISODIC: 7 * 24 * 3600,
    MemoryKind.SEMANTIC: 30 * 24 * 3600,
}
# Recency moves a memory's score by at most this share (relevance still decides most of the order).
RECENCY_WEIGHT = 0.5


def stale_after(rule: NamespaceRule | None) -> timedelta | None:
    return timedelta(seconds=rule.stale_after_seconds) if rule and rule.stale_after_seconds else None


def stale_since(memory: Memory, rule: NamespaceRule | None) -> datetime | None:
    """When this semantic memory goes (or went) stale under `rule`; None if it never does."""
    period = stale_after(rule)
    if period is None or memory.kind != MemoryKind.SEMANTIC or memory.deleted_at is not None:
        return None
    return (memory.verified_at or memory.updated_at) + period


def is_stale(memory: Memory, rule: NamespaceRule | None, now: datetime) -> bool:
    since = stale_since(memory, rule)
    return since is not None and since <= now


def is_valid(memory: Memory, now: datetime) -> bool:
    """Not superseded, not past its valid time, not archived (a summarized episode)."""
    return (
        not memory.superseded_by
        and (memory.valid_until is None or memory.valid_until > now)
        and memory.archived_at is None
    )


def valid_q(now: datetime, prefix: str = "") -> Q:
    """`is_valid` as a condition on Memory (prefix "") or through a relation ("memory__")."""
    return (
        Q(**{f"{prefix}superseded_by": ""})
        & (Q(**{f"{prefix}valid_until": None}) | Q(**{f"{prefix}valid_until__gt": now}))
        & Q(**{f"{prefix}archived_at": None})
    )


def why_invalid(memory: Memory, now: datetime) -> str:
    if memory.superseded_by:
        return f"superseded by {memory.superseded_by}"
    if memory.archived_at is not None:
        return "archived (summarized)"
    return f"not valid since {memory.valid_until.isoformat() if memory.valid_until else ''}"


def recency_factor(memory: Memory, rule: NamespaceRule | None, now: datetime) -> float:
    """1 for a memory written (or verified) now, falling to 1 - RECENCY_WEIGHT/2 at one half-life and
    towards 1 - RECENCY_WEIGHT with age."""
    half_life = (rule.recency_half_life_seconds if rule else None) or RECENCY_HALF_LIFE_SECONDS.get(
        MemoryKind(memory.kind), RECENCY_HALF_LIFE_SECONDS[MemoryKind.SEMANTIC]
    )
    touched = max(memory.updated_at, memory.verified_at or memory.updated_at)
    age = max((now - touched).total_seconds(), 0.0)
    return 1.0 - RECENCY_WEIGHT * (1.0 - 0.5 ** (age / half_life))


class Rules:
    """The namespace rule of each namespace met, looked up once (a list or search meets many)."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._rules: dict[str, NamespaceRule | None] = {}

    def __call__(self, namespace: str) -> NamespaceRule | None:
        if namespace not in self._rules:
            self._rules[namespace] = namespace_rule(self.policies, namespace)
        return self._rules[namespace]
