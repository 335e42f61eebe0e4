"""The one place policy decisions are made. Pure: no database, no Django; every service calls it.

Rules:
- a pattern is a glob where `*` matches any run of characters, `:` included;
- the most specific matching pattern wins (most literal characters, then fewest `*`);
- no matching pattern means deny;
- `*` in a role list means every role, `self` means the agent whose id is what the trailing `*` matched;
- humans read everything and may write everything (they outrank agents); the system actor too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from memoryhub.actors import Actor

WRITE_MODES = ("optimistic", "last_write_wins", "locked")


@dataclass(frozen=True, slots=True)
class NamespaceRule:
    pattern: str
    readers: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    write_mode: str = "optimistic"
    default_ttl_seconds: int | None = None
    max_content_bytes: int | None = None
    stale_after_seconds: int | None = None
    episodic_summarize_after_seconds: int | None = None
    summarizer: str = ""
    recency_half_life_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class FieldRule:
    namespace: str
    field: str
    owners: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeferRule:
    resource: str
    role: str
    defers_to: str
    window_seconds: int = 300


@dataclass(frozen=True, slots=True)
class PolicySet:
    namespaces: tuple[NamespaceRule, ...] = ()
    fields: tuple[FieldRule, ...] = ()
    deference: tuple[DeferRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    rule: NamespaceRule | None = None

    @property
    def write_mode(self) -> str:
        return self.rule.write_mode if self.rule else "optimistic"

    def details(self) -> dict[str, object]:
        policy = None
        if self.rule is not None:
            policy = {
                "pattern": self.rule.pattern,
                "readers": list(self.rule.readers),
                "writers": list(self.rule.writers),
            }
        return {"policy": policy, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class RecentAction:
    """An event on a resource, as the deference check needs it."""

    actor_kind: str
    actor_id: str
    actor_role: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Deference:
    proceed: bool
    defer_to: str | None = None
    reason: str = ""
    until: datetime | None = field(default=None)


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + "(.*)".join(re.escape(part) for part in pattern.split("*")) + r"\Z", re.DOTALL)


def glob_match(pattern: str, name: str) -> re.Match[str] | None:
    return _compile(pattern).match(name)


def glob_to_regex(pattern: str) -> str:
    """The glob as a regex for the database (`namespace__regex`): the same matches as `glob_match`,
    in syntax both PostgreSQL and SQLite (Python's `re`) read alike."""
    return "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"


def specificity(pattern: str) -> tuple[int, int, str]:
    return (len(pattern.replace("*", "")), -pattern.count("*"), pattern)


def best_match[T](rules: Iterable[T], name: str, pattern_of) -> tuple[T, re.Match[str]] | None:
    """The most specific rule whose pattern matches `name`, with the match (for `self`)."""
    best: tuple[T, re.Match[str]] | None = None
    for rule in rules:
        pattern = pattern_of(rule)
        match = glob_match(pattern, name)
        if match and (best is None or specificity(pattern) > specificity(pattern_of(best[0]))):
            best = (rule, match)
    return best


def _self_part(pattern: str, match: re.Match[str]) -> str | None:
    return match.group(match.re.groups) if pattern.endswith("*") and match.re.groups else None


def role_allowed(roles: Sequence[str], actor: Actor, self_part: str | None) -> bool:
    # `self` and `*` are words of the policy, never an agent's role (an agent given one before such
    # roles were refused must not read every `self` namespace).
    if "*" in roles or (actor.role in roles and actor.role not in ("self", "*")):
        return True
    return "self" in roles and self_part is not None and self_part == actor.id


def _decide(policies: PolicySet, actor: Actor, namespace: str, access: str) -> Decision:
    found = best_match(policies.namespaces, namespace, lambda rule: rule.pattern)
    rule = found[0] if found else None
    if actor.kind in ("human", "system"):
        return Decision(True, f"{actor.kind}s may {access} everything", rule)
    if found is None or rule is None:
        return Decision(False, f"no policy matches namespace {namespace!r} (default deny)")
    roles = rule.readers if access == "read" else rule.writers
    if role_allowed(roles, actor, _self_part(rule.pattern, found[1])):
        return Decision(True, f"role {actor.role!r} may {access} by policy {rule.pattern!r}", rule)
    return Decision(False, f"policy {rule.pattern!r} does not let role {actor.role!r} {access} {namespace!r}", rule)


def namespace_rule(policies: PolicySet, namespace: str) -> NamespaceRule | None:
    """The most specific namespace policy of `namespace`, whoever asks (its lifecycle settings)."""
    found = best_match(policies.namespaces, namespace, lambda rule: rule.pattern)
    return found[0] if found else None


def decide_read(policies: PolicySet, actor: Actor, namespace: str) -> Decision:
    return _decide(policies, actor, namespace, "read")


def decide_write(policies: PolicySet, actor: Actor, namespace: str) -> Decision:
    return _decide(policies, actor, namespace, "write")


def field_owners(policies: PolicySet, namespace: str) -> dict[str, tuple[str, ...]]:
    """Owned fields of a namespace -> their owner roles (most specific namespace pattern per field)."""
    by_field: dict[str, FieldRule] = {}
    for rule in policies.fields:
        if glob_match(rule.namespace, namespace):
            current = by_field.get(rule.field)
            if current is None or specificity(rule.namespace) > specificity(current.namespace):
                by_field[rule.field] = rule
    return {name: rule.owners for name, rule in by_field.items()}


def field_violations(policies: PolicySet, actor: Actor, namespace: str, changed: Iterable[str]) -> dict[str, list[str]]:
    """Changed fields the actor may not change, with their owners. Humans may change any field."""
    if actor.kind in ("human", "system"):
        return {}
    owners = field_owners(policies, namespace)
    return {
        name: list(owners[name])
        for name in sorted(changed)
        if name in owners and "*" not in owners[name] and actor.role not in owners[name]
    }


def changed_fields(before: object, after: object) -> set[str]:
    """Top-level keys whose value differs between two contents (non-objects count as one field `""`)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return set() if before == after else {""}
    return {key for key in before.keys() | after.keys() if before.get(key, _MISSING) != after.get(key, _MISSING)}


_MISSING = object()


def decide_deference(
    policies: PolicySet,
    actor: Actor,
    resource: str,
    recent: Sequence[RecentAction],
    now: datetime,
    held_by: str | None = None,
    human_window_seconds: int = 300,
) -> Deference:
    """Should `actor` proceed on `resource`, given recent actions by others and any human hold?"""
    if actor.kind in ("human", "system"):
        return Deference(True, reason="humans do not defer")
    if held_by:
        return Deference(False, "human", f"{held_by} holds {resource}")
    human_since = now - timedelta(seconds=human_window_seconds)
    for action in recent:
        if action.actor_kind == "human" and action.at >= human_since:
            until = action.at + timedelta(seconds=human_window_seconds)
            return Deference(
                False,
                "human",
                f"human {action.actor_id} acted on {resource} at {action.at.isoformat()}",
                until,
            )
    for rule in sorted(policies.deference, key=lambda r: specificity(r.resource), reverse=True):
        if rule.role != actor.role or not glob_match(rule.resource, resource):
            continue
        since = now - timedelta(seconds=rule.window_seconds)
        for action in recent:
            if action.actor_role == rule.defers_to and action.actor_id != actor.id and action.at >= since:
                until = action.at + timedelta(seconds=rule.window_seconds)
                return Deference(
                    False,
                    rule.defers_to,
                    f"{rule.role} defers to {rule.defers_to} on {rule.resource} for {rule.window_seconds}s; "
                    f"{action.actor_id} acted at {action.at.isoformat()}",
                    until,
                )
    return Deference(True, reason="no deference rule applies")
