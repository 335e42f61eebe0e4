"""Episodic memory ages into summaries (README "Memory lifecycle"). A namespace policy with
`episodic_summarize_after_seconds` groups its episodes by time window (windows of that length); once
a whole window is older than that, its episodes become one summarization task for the policy's
`summarizer` role, with their content in the payload. The agent that completes it sends the summary
(`{"summary": {...}}`); the hub stores it as a semantic memory with `derived_from` naming the episodes,
and archives each episode (kept for MEMORYHUB_EPISODIC_RETENTION_DAYS, then pruned as before). Without
a summarizer role the built-in deterministic summary is written at once. Every step is an event:
task.created / claimed / completed, memory.created of the summary, memory.summarized, memory.archived."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from memoryhub import times
from memoryhub.actors import SYSTEM, Actor
from memoryhub.errors import HubError, Invalid
from memoryhub.events.services import NewEvent, events_append
from memoryhub.times import iso
from policies.decide import NamespaceRule
from policies.readable import governed_q
from policies.selectors import policy_set

from .lifecycle import is_valid, valid_q
from .models import Memory, MemoryKind
from .queries import fetch_memory, memory_save_existing

log = logging.getLogger(__name__)

SUMMARIZE_KIND = "memory.summarize"
MAX_EPISODES_PER_SUMMARY = 200
MAX_DISTINCT_VALUES = 20
INSTRUCTIONS = 'Summarize these episodes; complete with {"summary": {<the summary as a JSON object>}}.'


@dataclass(frozen=True)
class Window:
    """The not yet archived episodes of one namespace in one time window, oldest first."""

    rule: NamespaceRule
    namespace: str
    start: datetime
    end: datetime
    episodes: list[Memory]


def _window(memory: Memory, period: int) -> tuple[datetime, datetime]:
    start = int(memory.updated_at.timestamp()) // period * period
    begin = datetime.fromtimestamp(start, tz=UTC)
    return begin, begin + timedelta(seconds=period)


def summary_key(start: datetime, first: Memory) -> str:
    """A part's key: its window and its first episode's id. Stable while the part waits for its
    summarizer (the same episodes, the same key), new for what is left of a window after a part is
    stored (its first episode is archived then), and short whatever the namespace or episode keys."""
    return f"summary-{start.strftime('%Y%m%dT%H%M%SZ')}-{first.id}"


def _due_windows(now: datetime, limit: int) -> list[Window]:
    """Up to `limit` windows wholly older than their namespace's episodic_summarize_after_seconds
    whose episodes are not archived yet. Each rule reads only the namespaces it governs (a more
    specific policy's are left out in SQL, so they never fill the rows read)."""
    policies = policy_set()
    groups: dict[tuple[str, datetime], Window] = {}
    for rule in policies.namespaces:
        period = rule.episodic_summarize_after_seconds
        if not period:
            continue
        episodes = Memory.objects.filter(
            governed_q(policies, rule, vendor=connection.vendor),
            valid_q(now),
            kind=MemoryKind.EPISODIC,
            deleted_at=None,
            updated_at__lt=now - timedelta(seconds=period),
        ).order_by("namespace", "updated_at", "id")[: limit * MAX_EPISODES_PER_SUMMARY]
        for episode in episodes:
            start, end = _window(episode, period)
            if end <= now - timedelta(seconds=period):  # the whole window is old: no episode will join it
                window = groups.setdefault(
                    (episode.namespace, start), Window(rule, episode.namespace, start, end, episodes=[])
                )
                window.episodes.append(episode)
    return [groups[found] for found in sorted(groups)[:limit]]


def _episode(memory: Memory) -> dict[str, Any]:
    return {
        "key": memory.key,
        "version": memory.version,
        "updated_at": iso(memory.updated_at),
        "updated_by": memory.updated_by,
        "content": memory.content,
    }


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())  # as the task payload is measured


def _payload(window: Window, episodes: list[Memory]) -> dict[str, Any]:
    return {
        "namespace": window.namespace,
        "window": {"start": iso(window.start), "end": iso(window.end)},
        "summary_key": summary_key(window.start, episodes[0]),
        "episodes": [_episode(e) for e in episodes],
        "instructions": INSTRUCTIONS,
    }


def window_parts(window: Window) -> list[dict[str, Any]]:
    """The window's payloads: at most MAX_EPISODES_PER_SUMMARY episodes each and within the task
    payload limit (MEMORYHUB_MAX_CONTENT_BYTES), so a busy window is summarized in parts instead of
    not at all. An episode too big for a payload of its own is a part alone (refused, and logged,
    when queued)."""
    limit = settings.MEMORYHUB_MAX_CONTENT_BYTES
    parts: list[dict[str, Any]] = []
    current: list[Memory] = []
    size = 0
    for episode in window.episodes:
        grown = _size(_episode(episode)) + 1  # and its comma
        if current and (len(current) == MAX_EPISODES_PER_SUMMARY or size + grown > limit):
            parts.append(_payload(window, current))
            current = []
        if not current:
            size = _size(_payload(window, [episode])) - _size(_episode(episode))
        current.append(episode)
        size += grown
    if current:
        parts.append(_payload(window, current))
    return parts


def builtin_summary(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """A deterministic summary: how many episodes, the first and the last, and the distinct values of
    each top-level field (up to MAX_DISTINCT_VALUES each, in order of first appearance)."""
    ordered = sorted(episodes, key=lambda e: (e["updated_at"], e["key"]))
    fields: dict[str, list[Any]] = {}
    for episode in ordered:
        for name, value in (episode["content"] or {}).items():
            values = fields.setdefault(name, [])
            if value not in values and len(values) < MAX_DISTINCT_VALUES:
                values.append(value)
    return {
        "count": len(ordered),
        "first": {k: ordered[0][k] for k in ("key", "updated_at", "content")} if ordered else None,
        "last": {k: ordered[-1][k] for k in ("key", "updated_at", "content")} if ordered else None,
        "fields": fields,
        "summarized_by": "built-in",
    }


def _task_key(payload: dict[str, Any]) -> str:
    # One task per part, whatever retries the sweeper makes; hashed, as a namespace may be 255 long.
    digest = hashlib.sha256(f"{payload['namespace']}\n{payload['summary_key']}".encode()).hexdigest()
    return f"summarize:{digest}"


def _summarize_part(rule: NamespaceRule, payload: dict[str, Any]) -> bool:
    """Queue the part's task (True if new) or, without a summarizer, store the built-in summary."""
    from memoryhub.tasks.services import task_create

    if rule.summarizer:
        result = task_create(
            actor=SYSTEM, role=rule.summarizer, kind=SUMMARIZE_KIND, payload=payload, idempotency_key=_task_key(payload)
        )
        return result.created
    with transaction.atomic():
        summary_store(actor=SYSTEM, payload=payload, summary=builtin_summary(payload["episodes"]))
    return True


def episodes_summarize(*, now: datetime | None = None, limit: int = 50) -> int:
    """The sweeper: each part of each window of old episodes becomes a summarization task for the
    namespace's summarizer role (once: the task's idempotency key names the part), or, without a
    summarizer, the built-in summary at once. A part that fails (too big, refused) is logged and
    left for the next pass; the others go on. Returns how many parts it handled."""
    now = now or times.now()
    done = 0
    for window in _due_windows(now, limit):
        for payload in window_parts(window):
            try:
                done += _summarize_part(window.rule, payload)
            except HubError as error:
                log.warning(
                    "summarizing %s/%s (%d episodes) failed: %s %s",
                    window.namespace,
                    payload["summary_key"],
                    len(payload["episodes"]),
                    error.code,
                    error,
                )
    return done


def check_summary_result(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict) or not isinstance(result.get("summary"), dict):
        raise Invalid(
            'a summarization task completes with {"summary": {...}}: the summary as a JSON object',
            result=["needs an object under 'summary'"],
        )
    return result["summary"]


def summary_store(
    *, actor: Actor, payload: dict[str, Any], summary: dict[str, Any], task_id: int | None = None
) -> Memory:
    """In the caller's transaction: the summary as a semantic memory with `derived_from`, and each
    source episode archived, if it is still the version summarized and not archived yet (so an
    episode is archived exactly once, and one rewritten since is kept for a later window)."""
    from .services import memory_put

    namespace = payload["namespace"]
    sources = [f"{namespace}/{episode['key']}" for episode in payload["episodes"]]
    written = memory_put(
        actor=SYSTEM,
        namespace=namespace,
        key=payload["summary_key"],
        content={**summary, "window": payload["window"]},
        kind=MemoryKind.SEMANTIC,
        if_none_match=True,  # a summary is never written over (an earlier part's, anyone's)
        reason=f"summary of {len(sources)} episodes by {actor.label}" + (f" (task {task_id})" if task_id else ""),
        derived_from=sources,
    )
    now = times.now()
    events = [
        NewEvent(
            type="memory.summarized",
            namespace=namespace,
            resource=written.memory.resource,
            version=written.memory.version,
            summary=f"{written.memory.resource} summarizes {len(sources)} episodes",
            after={"derived_from": sources, "task": task_id, "summarized_by": actor.label},
        )
    ]
    for episode in payload["episodes"]:
        memory = fetch_memory(namespace, episode["key"], for_update=True)
        if memory is None or memory.deleted_at is not None or memory.version != episode["version"]:
            continue
        if not is_valid(memory, now):
            continue  # archived already (a summary of it was stored before), or superseded
        memory.archived_at = now
        memory_save_existing(memory)
        events.append(
            NewEvent(
                type="memory.archived",
                namespace=namespace,
                resource=memory.resource,
                version=memory.version,
                summary=f"{memory.resource} archived: summarized in {written.memory.resource}",
                after={"summary": written.memory.resource},
            )
        )
    events_append(actor=actor, events=events)
    return written.memory
