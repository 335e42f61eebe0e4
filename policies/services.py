"""Changing policies: one `policy.changed` event per added, changed or removed entry, in the same
transaction. Used by `apply_policies`, Django admin and the tests alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models, transaction

from memoryhub.actors import Actor
from memoryhub.agents.names import POLICY_WORDS, policy_role_error
from memoryhub.errors import Invalid
from memoryhub.events.services import NewEvent, events_append

from .decide import WRITE_MODES
from .models import DeferenceRule, FieldOwnership, NamespacePolicy

# A namespace's memory lifecycle (README "Memory lifecycle"), all optional.
LIFECYCLE_FIELDS = (
    "stale_after_seconds",
    "episodic_summarize_after_seconds",
    "summarizer",
    "recency_half_life_seconds",
)
MAX_LIFECYCLE_SECONDS = 10 * 365 * 24 * 3600


@dataclass(frozen=True)
class Kind:
    name: str
    model: type[NamespacePolicy | FieldOwnership | DeferenceRule]
    key_fields: tuple[str, ...]
    value_fields: tuple[str, ...]


KINDS = {
    "namespaces": Kind(
        "namespaces",
        NamespacePolicy,
        ("pattern",),
        ("readers", "writers", "write_mode", "default_ttl_seconds", "max_content_bytes")
        + LIFECYCLE_FIELDS
        + ("description",),
    ),
    "fields": Kind("fields", FieldOwnership, ("namespace", "field"), ("owners",)),
    "deference": Kind("deference", DeferenceRule, ("resource", "role", "defers_to"), ("window_seconds",)),
}
# The file says "namespace"/"field"/"resource" where the models say the same; only these keys exist.
FILE_KEYS = {
    "namespaces": {
        "pattern",
        "readers",
        "writers",
        "write_mode",
        "default_ttl_seconds",
        "max_content_bytes",
        *LIFECYCLE_FIELDS,
        "description",
    },
    "fields": {"namespace", "field", "owners"},
    "deference": {"resource", "role", "defers_to", "window_seconds"},
}


@dataclass(frozen=True)
class PolicyChange:
    kind: str
    key: tuple[str, ...]
    action: str  # added | changed | removed
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def describe(self) -> str:
        return f"{self.action} {self.kind} {' '.join(self.key)}"


def _text(value: Any, where: str, name: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise Invalid(f"{where}: {name} must be a non-empty string", entry=where, field=name)
    return value.strip()


def _roles(
    value: Any, where: str, name: str, *, allow_empty: bool = True, words: frozenset[str] = frozenset({"*"})
) -> list[str]:
    """A list of role names, each one or one of `words` (`*`, and `self` where it means something)."""
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(r, str) and r.strip() for r in value):
        raise Invalid(f"{where}: {name} must be a list of role names", entry=where, field=name)
    if not value and not allow_empty:
        raise Invalid(f"{where}: {name} must name at least one role", entry=where, field=name)
    roles = [r.strip() for r in value]
    for role in roles:
        _check_role(role, where, name, words=words)
    return roles


def _check_role(role: str, where: str, name: str, *, words: frozenset[str] = frozenset()) -> str:
    if problem := policy_role_error(role, words=words):
        raise Invalid(f"{where}: {name}: {problem}", entry=where, field=name)
    return role


def _positive(value: Any, where: str, name: str, *, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Invalid(f"{where}: {name} must be a positive integer", entry=where, field=name)
    return value


def _seconds(raw: dict[str, Any], where: str, name: str) -> int | None:
    value = _positive(raw.get(name), where, name, default=None)
    if value is not None and value > MAX_LIFECYCLE_SECONDS:
        raise Invalid(f"{where}: {name} must be at most 10 years ({MAX_LIFECYCLE_SECONDS} s)", entry=where, field=name)
    return value


def _lifecycle(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The lifecycle settings of a namespace entry, checked: a summarizer needs an age to act at."""
    values: dict[str, Any] = {
        name: _seconds(raw, where, name)
        for name in ("stale_after_seconds", "episodic_summarize_after_seconds", "recency_half_life_seconds")
    }
    summarizer = raw.get("summarizer") or ""
    if summarizer:
        _check_role(_text(summarizer, where, "summarizer"), where, "summarizer")
        if values["episodic_summarize_after_seconds"] is None:
            raise Invalid(
                f"{where}: summarizer needs episodic_summarize_after_seconds (when episodes are summarized)",
                entry=where,
                field="summarizer",
            )
    values["summarizer"] = summarizer.strip() if isinstance(summarizer, str) else summarizer
    return values


def normalize_entry(kind: str, raw: Any, where: str) -> dict[str, Any]:
    """One policy entry from a file or form, checked and with defaults filled in."""
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: must be an object", entry=where)
    unknown = set(raw) - FILE_KEYS[kind]
    if unknown:
        raise Invalid(f"{where}: unknown keys {sorted(unknown)}", entry=where, unknown=sorted(unknown))
    if kind == "namespaces":
        mode = raw.get("write_mode", "optimistic")
        if mode not in WRITE_MODES:
            raise Invalid(f"{where}: write_mode must be one of {list(WRITE_MODES)}", entry=where, field="write_mode")
        pattern = _text(raw.get("pattern"), where, "pattern")
        # `self` is the agent whose id the trailing `*` matched: without one it names nobody.
        words = POLICY_WORDS if pattern.endswith("*") else frozenset({"*"})
        return {
            "pattern": pattern,
            "readers": _roles(raw.get("readers"), where, "readers", words=words),
            "writers": _roles(raw.get("writers"), where, "writers", words=words),
            "write_mode": mode,
            "default_ttl_seconds": _positive(
                raw.get("default_ttl_seconds"), where, "default_ttl_seconds", default=None
            ),
            "max_content_bytes": _positive(raw.get("max_content_bytes"), where, "max_content_bytes", default=None),
            **_lifecycle(raw, where),
            "description": raw.get("description") or "",
        }
    if kind == "fields":
        return {
            "namespace": _text(raw.get("namespace"), where, "namespace"),
            "field": _text(raw.get("field"), where, "field"),
            "owners": _roles(raw.get("owners"), where, "owners", allow_empty=False),
        }
    return {
        "resource": _text(raw.get("resource"), where, "resource"),
        "role": _check_role(_text(raw.get("role"), where, "role"), where, "role"),
        "defers_to": _check_role(_text(raw.get("defers_to"), where, "defers_to"), where, "defers_to"),
        "window_seconds": _positive(raw.get("window_seconds"), where, "window_seconds", default=300),
    }


def parse_document(document: Any) -> dict[str, dict[tuple[str, ...], dict[str, Any]]]:
    """A whole policy file, checked. Raises Invalid naming the first offending entry."""
    if not isinstance(document, dict):
        raise Invalid("the policy file must be a JSON object")
    unknown = set(document) - set(KINDS)
    if unknown:
        raise Invalid(f"unknown top-level keys {sorted(unknown)}", unknown=sorted(unknown))
    parsed: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}
    for kind, spec in KINDS.items():
        entries = document.get(kind, [])
        if not isinstance(entries, list):
            raise Invalid(f"{kind} must be a list", entry=kind)
        parsed[kind] = {}
        for index, raw in enumerate(entries):
            where = f"{kind}[{index}]"
            entry = normalize_entry(kind, raw, where)
            key = tuple(entry[f] for f in spec.key_fields)
            if key in parsed[kind]:
                raise Invalid(f"{where}: duplicates an earlier entry {list(key)}", entry=where)
            parsed[kind][key] = entry
    return parsed


def _row_dict(kind: Kind, row: models.Model) -> dict[str, Any]:
    return {name: getattr(row, name) for name in kind.key_fields + kind.value_fields}


def _stored(kind: Kind) -> dict[tuple[str, ...], models.Model]:
    return {tuple(getattr(row, f) for f in kind.key_fields): row for row in kind.model.objects.all()}


def _event(change: PolicyChange, reason: str) -> NewEvent:
    return NewEvent(
        type="policy.changed",
        summary=f"policy {change.describe()}",
        namespace="",
        resource=f"policy:{change.kind}:{'/'.join(change.key)}",
        before=change.before,
        after=change.after,
        reason=reason,
    )


def plan_changes(parsed: dict[str, dict[tuple[str, ...], dict[str, Any]]]) -> list[PolicyChange]:
    changes: list[PolicyChange] = []
    for name, kind in KINDS.items():
        stored = _stored(kind)
        wanted = parsed[name]
        for key, entry in wanted.items():
            if key not in stored:
                changes.append(PolicyChange(name, key, "added", None, entry))
            elif (current := _row_dict(kind, stored[key])) != entry:
                changes.append(PolicyChange(name, key, "changed", current, entry))
        for key, row in stored.items():
            if key not in wanted:
                changes.append(PolicyChange(name, key, "removed", _row_dict(kind, row), None))
    return changes


def _apply_change(change: PolicyChange) -> None:
    kind = KINDS[change.kind]
    lookup: dict[str, Any] = dict(zip(kind.key_fields, change.key, strict=True))
    if change.after is None:
        kind.model.objects.filter(**lookup).delete()
    else:
        values = {f: change.after[f] for f in kind.value_fields}
        kind.model.objects.update_or_create(**lookup, defaults=values)


def policies_apply(*, actor: Actor, document: Any, dry_run: bool = False, reason: str = "") -> list[PolicyChange]:
    """Make the stored policies equal to `document`. All or nothing; an invalid file changes nothing."""
    parsed = parse_document(document)
    with transaction.atomic():
        changes = plan_changes(parsed)
        if dry_run or not changes:
            return changes
        for change in changes:
            _apply_change(change)
        events_append(actor=actor, events=[_event(change, reason or "apply_policies") for change in changes])
    return changes


def policy_write(
    *,
    actor: Actor,
    kind: str,
    values: dict[str, Any],
    previous_key: tuple[str, ...] | None = None,
    reason: str = "",
) -> list[PolicyChange]:
    """Add or change one policy entry (Django admin's save). Renaming its key removes the old entry."""
    spec = KINDS[kind]
    entry = normalize_entry(kind, {k: v for k, v in values.items() if k in FILE_KEYS[kind]}, kind)
    key = tuple(entry[f] for f in spec.key_fields)
    with transaction.atomic():
        stored = _stored(spec)
        changes = []
        if previous_key is not None and previous_key != key and previous_key in stored:
            changes.append(PolicyChange(kind, previous_key, "removed", _row_dict(spec, stored[previous_key]), None))
        if key not in stored:
            changes.append(PolicyChange(kind, key, "added", None, entry))
        elif (current := _row_dict(spec, stored[key])) != entry:
            changes.append(PolicyChange(kind, key, "changed", current, entry))
        for change in changes:
            _apply_change(change)
        if changes:
            events_append(actor=actor, events=[_event(change, reason) for change in changes])
    return changes


def policy_remove(*, actor: Actor, kind: str, key: tuple[str, ...], reason: str = "") -> list[PolicyChange]:
    spec = KINDS[kind]
    with transaction.atomic():
        row = _stored(spec).get(key)
        if row is None:
            return []
        change = PolicyChange(kind, key, "removed", _row_dict(spec, row), None)
        _apply_change(change)
        events_append(actor=actor, events=[_event(change, reason)])
    return [change]


def kind_of(model: type[models.Model]) -> str:
    return next(name for name, spec in KINDS.items() if spec.model is model)


def key_of(row: models.Model) -> tuple[str, ...]:
    return tuple(getattr(row, f) for f in KINDS[kind_of(type(row))].key_fields)
