"""Episodic memory ages into summaries (README "Memory lifecycle"). A namespace policy with
`episodic_summarize_after_seconds` groups its episodes by time window (windows of that length); once
a whole window is older than that, its episodes become one summarization task for the policy's
`summarizer` role, with their content in the payload. The agent that completes it sends the summary
(`{"summary": {...}}`); the hub stores it as a semantic memory with `derived_from` naming the episodes,
and archives each episode (kept for MEMORYHUB_EPISODIC_RETENTION_DAYS, then pruned as before). Without
a summarizer role the built-in deterministic summary is written at once. Every step is an event:
task.created / claimed / completed, memory.created of the summary, memory.summarized, memory.archived."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction

from memoryhub import times
from memoryhub.actors import SYSTEM, Actor
from memoryhub.errors import Invalid
from memoryhub.events.services import NewEvent, events_append
from memoryhub.times import iso
from policies.decide import NamespaceRule, namespace_rule
from policies.readable import glob_q
from policies.selectors import policy_set

from .lifecycle import is_valid, valid_q
from .models import Memory, MemoryKind
from .queries import fetch_memory, memory_save_existing

SUMMARIZE_KIND = "memory.summarize"
MAX_EPISODES_PER_SUMMARY = 200
MAX_DISTINCT_VALUES = 20


def _window(memory: Memory, period: int) -> tuple[datetime, datetime]:
    start = int(memory.updated_at.timestamp()) // period * period
    begin = datetime.fromtimestamp(start, tz=UTC)
    return begin, begin + timedelta(seconds=period)


def summary_key(start: datetime) -> str:
    return "summary-" + start.strftime("%Y%m%dT%H%M%SZ")


def _due_groups(now: datetime, limit: int) -> list[tuple[NamespaceRule, str, datetime, datetime, list[Memory]]]:
    """(rule, namespace, window start, window end, episodes) for every window wholly older than its
    namespace's episodic_summarize_after_seconds whose episodes are not archived yet."""
    policies = policy_set()
    groups: dict[tuple[str, datetime], list[Memory]] = defaultdict(list)
    rules: dict[str, NamespaceRule | None] = {}
    for rule in policies.namespaces:
        period = rule.episodic_summarize_after_seconds
        if not period:
            continue
        episodes = Memory.objects.filter(
            glob_q(rule.pattern, vendor=connection.vendor),
            valid_q(now),
            kind=MemoryKind.EPISODIC,
            deleted_at=None,
            updated_at__lt=now - timedelta(seconds=period),
        ).order_by("namespace", "updated_at", "id")[: limit * MAX_EPISODES_PER_SUMMARY]
        for episode in episodes:
            if episode.namespace not in rules:
                rules[episode.namespace] = namespace_rule(policies, episode.namespace)
            if rules[episode.namespace] != rule:
                continue  # a more specific policy governs it
            start, end = _window(episode, period)
            if end <= now - timedelta(seconds=period):  # the whole window is old: no episode will join it
                groups[(episode.namespace, start)].append(episode)
    due = []
    for (namespace, start), members in sorted(groups.items())[:limit]:
        governing = rules[namespace]
        assert governing is not None and governing.episodic_summarize_after_seconds
        end = start + timedelta(seconds=governing.episodic_summarize_after_seconds)
        due.append((governing, namespace, start, end, members[:MAX_EPISODES_PER_SUMMARY]))
    return due


def _episode(memory: Memory) -> dict[str, Any]:
    return {
        "key": memory.key,
        "version": memory.version,
        "updated_at": iso(memory.updated_at),
        "updated_by": memory.updated_by,
        "content": memory.content,
    }


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


def episodes_summarize(*, now: datetime | None = None, limit: int = 50) -> int:
    """The sweeper: each window of old episodes becomes a summarization task for the namespace's
    summarizer role (once: the task's idempotency key names the window), or, without a summarizer,
    the built-in summary at once. Returns how many windows it handled."""
    from memoryhub.tasks.services import task_create

    now = now or times.now()
    done = 0
    for rule, namespace, start, end, episodes in _due_groups(now, limit):
        payload: dict[str, Any] = {
            "namespace": namespace,
            "window": {"start": iso(start), "end": iso(end)},
            "summary_key": summary_key(start),
            "episodes": [_episode(e) for e in episodes],
            "instructions": 'Summarize these episodes; complete with {"summary": {<the summary as a JSON object>}}.',
        }
        if rule.summarizer:
            result = task_create(
                actor=SYSTEM,
                role=rule.summarizer,
                kind=SUMMARIZE_KIND,
                payload=payload,
                idempotency_key=f"summarize:{namespace}:{iso(start)}",
            )
            done += 1 if result.created else 0
        else:
            with transaction.atomic():
                summary_store(actor=SYSTEM, payload=payload, summary=builtin_summary(payload["episodes"]))
            done += 1
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
