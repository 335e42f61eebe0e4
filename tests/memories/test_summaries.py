"""Episodic memory ages into summaries (issue 14): old episodes grouped per namespace and window into
a summarization task that a real agent process claims through memoryhub.client; a summarizer that
crashes loses nothing (its claim lapses, the task is requeued, the episodes are archived exactly
once); without a summarizer role the built-in summary is written at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from memoryhub.actors import SYSTEM, Actor
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory
from memoryhub.memories.selectors import memories_list, memory_get
from memoryhub.memories.services import memory_put
from memoryhub.memories.summaries import SUMMARIZE_KIND, builtin_summary, episodes_summarize, summary_key
from memoryhub.tasks.models import Task, TaskStatus
from memoryhub.tasks.services import claims_requeue_expired
from policies.services import policies_apply
from tests.servers import ROOT

HOUR = 3600
POLICIES = {
    "namespaces": [
        {
            "pattern": "log:*",
            "readers": ["*"],
            "writers": ["*"],
            "write_mode": "last_write_wins",
            "episodic_summarize_after_seconds": HOUR,
            "summarizer": "scribe",
            "stale_after_seconds": 30 * 24 * HOUR,
        },
        {
            "pattern": "diary:*",
            "readers": ["*"],
            "writers": ["*"],
            "write_mode": "last_write_wins",
            "episodic_summarize_after_seconds": HOUR,
        },
    ]
}
AGENT = """
import os, sys
from memoryhub.client import HubClient

hub = HubClient(os.environ["HUB"], token=os.environ["TOKEN"])
task = hub.claim(kinds=["memory.summarize"], ttl=30)
if task is None:
    sys.exit(2)
if sys.argv[1] == "crash":
    os._exit(3)  # claimed, never completed: the claim must lapse
episodes = task.payload["episodes"]
hub.complete_task(task.id, {"summary": {"text": f"{len(episodes)} orders", "keys": [e["key"] for e in episodes]}})
"""


def write_episodes(namespace: str, contents: list[dict], age: timedelta) -> list[str]:
    writer = Actor(kind="agent", id="orders-1", role="orders")
    keys = []
    for index, content in enumerate(contents):
        key = f"e{index}"
        memory_put(actor=writer, namespace=namespace, key=key, content=content, kind="episodic")
        keys.append(key)
    # Written long ago (the write path stamps now): the whole hour they fall in is old.
    then = timezone.now() - age
    for index, key in enumerate(keys):
        Memory.objects.filter(namespace=namespace, key=key).update(updated_at=then + timedelta(seconds=index))
    return keys


def window_start(namespace: str):
    first = Memory.objects.filter(namespace=namespace).order_by("updated_at").first()
    return first.updated_at.replace(minute=0, second=0, microsecond=0)


def agent(hub: str, token: str, mode: str) -> int:
    env = {**os.environ, "HUB": hub, "TOKEN": token}
    return subprocess.run([sys.executable, "-c", AGENT, mode], env=env, cwd=ROOT, timeout=60).returncode


@pytest.mark.django_db(transaction=True)
def test_a_summarizer_process_summarizes_and_a_crashed_one_loses_nothing(hub_server, make_agent):
    policies_apply(actor=SYSTEM, document=POLICIES)
    first, second = make_agent("scribe-1", "scribe"), make_agent("scribe-2", "scribe")
    # Two hours ago, past the half-hour mark: all in one window of an hour, wholly over an hour ago.
    start = (timezone.now() - timedelta(hours=3)).replace(minute=30, second=0, microsecond=0)
    keys = write_episodes("log:orders", [{"sku": "a", "n": 1}, {"sku": "b", "n": 2}, {"sku": "a", "n": 3}], timedelta())
    for index, key in enumerate(keys):
        Memory.objects.filter(namespace="log:orders", key=key).update(updated_at=start + timedelta(seconds=index))
    write_episodes("log:orders:fresh", [{"sku": "c"}], timedelta(minutes=5))  # too young to summarize

    assert episodes_summarize() == 1
    assert episodes_summarize() == 0  # the window's task exists: not queued twice
    task = Task.objects.get(kind=SUMMARIZE_KIND)
    assert (task.role, task.payload["namespace"]) == ("scribe", "log:orders")
    assert [e["content"] for e in task.payload["episodes"]] == [
        {"sku": "a", "n": 1},
        {"sku": "b", "n": 2},
        {"sku": "a", "n": 3},
    ]

    # The first summarizer claims and dies; its claim lapses and the task goes back to the queue.
    assert agent(hub_server, first.token, "crash") == 3
    task.refresh_from_db()
    assert task.status == TaskStatus.CLAIMED and not Memory.objects.filter(archived_at__isnull=False).exists()
    assert claims_requeue_expired(now=task.claim_expires_at) == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.QUEUED

    # The second one completes it: the summary is stored, the episodes archived, each once.
    assert agent(hub_server, second.token, "complete") == 0
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    summary = memory_get(actor=SYSTEM, namespace="log:orders", key=task.payload["summary_key"])
    assert summary["kind"] == "semantic" and summary["content"]["text"] == "3 orders"
    assert summary["derived_from"] == [f"log:orders/{key}" for key in keys]
    archived = Event.objects.filter(type="memory.archived")
    assert sorted(e.resource for e in archived) == [f"log:orders/{key}" for key in keys]
    assert (
        Event.objects.filter(type="memory.summarized", resource=f"log:orders/{task.payload['summary_key']}").count()
        == 1
    )
    assert [m["key"] for m in memories_list(actor=SYSTEM, namespace="log:orders")[0]] == [task.payload["summary_key"]]
    kept = memories_list(actor=SYSTEM, namespace="log:orders", include_invalid=True)[0]
    assert sorted(m["key"] for m in kept if m["archived_at"]) == keys  # kept for audit
    assert episodes_summarize() == 0  # nothing left to summarize, nothing archived twice
    assert Event.objects.filter(type="memory.archived").count() == 3
    assert Memory.objects.get(namespace="log:orders:fresh").archived_at is None


def test_without_a_summarizer_the_built_in_summary_is_written(policies, make_agent):
    policies_apply(actor=SYSTEM, document=POLICIES)
    keys = write_episodes(
        "diary:ops",
        [{"event": "deploy", "ok": True}, {"event": "rollback", "ok": False}, {"event": "deploy", "ok": True, "v": 2}],
        timedelta(hours=3),
    )
    assert episodes_summarize() == 1
    assert not Task.objects.exists()
    summary = Memory.objects.get(namespace="diary:ops", derived_from__isnull=False)
    content = summary.content
    assert content["count"] == 3 and content["summarized_by"] == "built-in"
    assert (content["first"]["key"], content["last"]["key"]) == ("e0", "e2")
    assert content["fields"] == {"event": ["deploy", "rollback"], "ok": [True, False], "v": [2]}
    assert summary.derived_from == [f"diary:ops/{key}" for key in keys]
    assert Memory.objects.filter(namespace="diary:ops", archived_at__isnull=False).count() == 3
    assert episodes_summarize() == 0


def test_the_built_in_summary_is_deterministic():
    episodes = [
        {"key": "b", "updated_at": "2026-01-01T00:00:02Z", "content": {"x": 1}},
        {"key": "a", "updated_at": "2026-01-01T00:00:01Z", "content": {"x": 1, "y": [1]}},
    ]
    assert builtin_summary(episodes) == builtin_summary(list(reversed(episodes)))
    assert builtin_summary(episodes)["fields"] == {"x": [1], "y": [[1]]}
    assert builtin_summary([])["count"] == 0


def test_a_summary_result_is_checked_and_a_replayed_completion_archives_nothing_twice(policies, make_agent):
    from memoryhub.errors import Invalid
    from memoryhub.tasks.services import task_claim, task_complete

    policies_apply(actor=SYSTEM, document=POLICIES)
    scribe = make_agent("scribe-1", "scribe")
    write_episodes("log:orders", [{"n": 1}, {"n": 2}], timedelta(hours=3))
    assert episodes_summarize() == 1
    claimed = task_claim(actor=scribe.actor, kinds=[SUMMARIZE_KIND])
    assert claimed is not None
    with pytest.raises(Invalid):
        task_complete(actor=scribe.actor, task_id=claimed.task.id, result={"text": "not under summary"})
    assert Task.objects.get().status == TaskStatus.CLAIMED  # refused as a whole: still the scribe's
    task_complete(actor=scribe.actor, task_id=claimed.task.id, result={"summary": {"text": "two"}})
    replay = task_complete(actor=scribe.actor, task_id=claimed.task.id, result={"summary": {"text": "two"}})
    assert replay.replayed
    assert Event.objects.filter(type="memory.archived").count() == 2
    assert Event.objects.filter(type="memory.summarized").count() == 1


# --- each window on its own (review of the sweeper) ----------------------------------------------


def old_episodes(namespace: str, count: int, *, content=None, start=None) -> list[Memory]:
    """`count` episodes in one window three hours ago, as rows (the sweeper reads rows; the write
    path's events are not what these tests are about, and 200+ writes would be slow)."""
    start = start or (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    rows = [
        Memory(
            namespace=namespace,
            key=f"e{index:04d}",
            kind="episodic",
            content=content or {"n": index},
            version=1,
            created_by="orders-1",
            updated_by="orders-1",
            created_at=start,
            updated_at=start + timedelta(seconds=index % 3000),
            verified_at=start,
            verified_by="orders-1",
        )
        for index in range(count)
    ]
    Memory.objects.bulk_create(rows)
    return list(Memory.objects.filter(namespace=namespace).order_by("updated_at", "id"))


def complete_all(scribe) -> None:
    from memoryhub.tasks.services import task_claim, task_complete

    while (claimed := task_claim(actor=scribe.actor, kinds=[SUMMARIZE_KIND])) is not None:
        episodes = claimed.task.payload["episodes"]
        task_complete(actor=scribe.actor, task_id=claimed.task.id, result={"summary": {"count": len(episodes)}})


def test_a_window_of_more_than_200_episodes_is_summarized_in_parts_none_lost_none_overwritten(policies, make_agent):
    policies_apply(actor=SYSTEM, document=POLICIES)
    scribe = make_agent("scribe-1", "scribe")
    episodes = old_episodes("log:orders", 450)

    assert episodes_summarize() == 3
    assert episodes_summarize() == 0  # the same parts, the same tasks
    parts = [task.payload for task in Task.objects.order_by("id")]
    assert [len(p["episodes"]) for p in parts] == [200, 200, 50]
    assert len({p["summary_key"] for p in parts}) == 3
    complete_all(scribe)

    summaries = Memory.objects.filter(namespace="log:orders", derived_from__isnull=False).order_by("key")
    assert sorted(s.content["count"] for s in summaries) == [50, 200, 200]
    sources = sorted(source for s in summaries for source in s.derived_from)
    assert sources == sorted(f"log:orders/{e.key}" for e in episodes)  # each episode in exactly one
    assert Event.objects.filter(type="memory.archived").count() == 450
    assert Memory.objects.filter(namespace="log:orders", archived_at=None).count() == 3
    assert episodes_summarize() == 0


def test_a_window_over_the_payload_limit_is_split_into_parts_under_it(policies, make_agent, settings):
    settings.MEMORYHUB_MAX_CONTENT_BYTES = 4000
    policies_apply(actor=SYSTEM, document=POLICIES)
    old_episodes("log:orders", 30, content={"note": "x" * 300})

    assert episodes_summarize() > 1
    tasks = list(Task.objects.all())
    assert all(len(json.dumps(t.payload, separators=(",", ":")).encode()) <= 4000 for t in tasks)
    assert sum(len(t.payload["episodes"]) for t in tasks) == 30


def test_a_long_namespace_is_summarized_and_a_refused_part_does_not_stop_the_others(policies, make_agent, caplog):
    policies_apply(actor=SYSTEM, document=POLICIES)
    long_namespace = "diary:" + "n" * 240  # a task key naming it would be over 255 characters
    old_episodes(long_namespace, 2)
    blocked = old_episodes("diary:ops", 2)
    old_episodes("diary:zz", 2)
    # Someone already wrote where diary:ops's summary would go: it is not written over.
    start = blocked[0].updated_at.replace(minute=0, second=0, microsecond=0)
    key = summary_key(start, blocked[0])
    memory_put(actor=SYSTEM, namespace="diary:ops", key=key, content={"mine": True}, kind="semantic")

    assert episodes_summarize() == 2
    assert Memory.objects.get(namespace="diary:ops", key=key).content == {"mine": True}
    assert not Memory.objects.filter(namespace="diary:ops", archived_at__isnull=False).exists()
    assert "diary:ops" in caplog.text and "version_conflict" in caplog.text
    for namespace in (long_namespace, "diary:zz"):
        assert Memory.objects.filter(namespace=namespace, archived_at__isnull=False).count() == 2
        assert Memory.objects.get(namespace=namespace, derived_from__isnull=False).content["count"] == 2


def test_the_system_summarizes_a_locked_namespace_under_a_human_hold(policies, human):
    from memoryhub.locks.holds import hold_place

    locked = {"pattern": "vault:*", "readers": ["*"], "writers": ["*"], "write_mode": "locked"}
    policies_apply(
        actor=SYSTEM,
        document={"namespaces": [{**locked, "episodic_summarize_after_seconds": HOUR}, *POLICIES["namespaces"]]},
    )
    old_episodes("vault:audit", 3)
    hold_place(actor=human.actor, resource="vault:audit", reason="investigating")

    assert episodes_summarize() == 1
    assert Memory.objects.filter(namespace="vault:audit", archived_at__isnull=False).count() == 3


def test_a_more_specific_policy_s_episodes_never_fill_the_rows_read(policies):
    keep = {"pattern": "diary:keep:*", "readers": ["*"], "writers": ["*"], "write_mode": "last_write_wins"}
    policies_apply(actor=SYSTEM, document={"namespaces": [*POLICIES["namespaces"], keep]})
    # More old episodes than one pass reads (limit 1 window = 200 rows), all under the stronger
    # rule (which does not summarize), sorted before the one due window.
    old_episodes("diary:keep:a", 250)
    old_episodes("diary:ops", 2)

    assert episodes_summarize(limit=1) == 1
    assert Memory.objects.filter(namespace="diary:ops", archived_at__isnull=False).count() == 2
    assert not Memory.objects.filter(namespace="diary:keep:a", archived_at__isnull=False).exists()
