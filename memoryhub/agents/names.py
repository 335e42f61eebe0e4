"""Names an agent may not take, because policies or the hub give them a meaning of their own.

- `self` and `*` mean something in a policy's role list: an agent with the role `self` would read and
  write every `agent:private:*` namespace, one with the role `*` would look like "every role".
- `human` and `system` are the roles the hub gives people and itself (a context entry from a human
  says `from_role: human`).
- An agent id and a role may never be the same name: `self` compares an agent id with the part of a
  namespace a trailing `*` matched, and some namespaces are named after roles (`inbox:<role>`), so
  under `inbox:*: readers [self]` an agent called `support` would read the support role's inbox.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

RESERVED_NAMES = frozenset({"self", "*", "human", "system"})
POLICY_WORDS = frozenset({"self", "*"})  # what a policy's role list may hold besides role names


def reserved_name_errors(*, agent_id: str, role: str) -> dict[str, list[str]]:
    """Why `agent_id` or `role` may not be used for a new agent (field -> messages); empty if they may."""
    from .models import Agent

    errors: dict[str, list[str]] = {}
    if agent_id in RESERVED_NAMES:
        errors["id"] = [f"{agent_id!r} is a reserved word"]
    if role in RESERVED_NAMES:
        errors["role"] = [f"{role!r} is a reserved word"]
    if errors:
        return errors
    if agent_id == role or Agent.objects.filter(role=agent_id).exists():
        errors["id"] = [f"{agent_id!r} is a role: an agent id may not be a role name"]
    if Agent.objects.filter(id=role).exclude(id=agent_id).exists():
        errors["role"] = [f"{role!r} is an agent's id: a role may not be an agent id"]
    return errors


def policy_role_error(role: str, *, words: frozenset[str] = POLICY_WORDS) -> str | None:
    """Why `role` may not appear in a policy's role list, or None: a role name, or one of `words`
    (`*` and `self` in readers and writers, where they mean something)."""
    from .models import ROLE_RE

    if role in words:
        return None
    if role in RESERVED_NAMES:
        return f"{role!r} is a reserved word, not a role, here"
    try:
        RegexValidator(ROLE_RE)(role)
    except ValidationError:
        return f"{role!r} is not a role name (lowercase letters, digits, '.', '_', '-')"
    return None
