"""Claiming work through HubClient: one task never goes to two agents; completion is idempotent."""

from __future__ import annotations

import pytest

from memoryhub.client import AlreadyClaimed, HubClient
from memoryhub.tasks.models import Task as TaskRow

from .conftest import run_threads

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def test_claim_complete_and_complete_again_returns_the_first_result(connect):
    lead = connect("lead-1", "lead")
    docs = connect("docs-1", "docs")
    created = lead.create_task("docs", "render", {"doc": "api.md"})
    assert created.created and created.status == "queued"

    task = docs.claim(ttl=60)
    assert (task.id, task.status, task.claimed_by, task.payload) == (created.id, "claimed", "docs-1", {"doc": "api.md"})
    assert task.heartbeat(ttl=120).claimed_by == "docs-1"
    done = task.complete({"pages": 3})
    assert (done.status, done.result) == ("completed", {"pages": 3})
    assert task.complete({"pages": 99}).result == {"pages": 3}
    assert docs.claim() is None  # nothing left: 204


def test_two_workers_never_get_the_same_task(hub_url, connect):
    lead = connect("lead-1", "lead")
    workers = [connect(f"docs-{i}", "docs") for i in range(6)]
    for n in range(4):
        lead.create_task("docs", "render", {"doc": n})
    claimed: list[int | None] = []

    def work(index: int) -> None:
        with HubClient(hub_url, token=workers[index].persona.token) as hub:
            task = hub.claim(ttl=60)
            claimed.append(task.id if task else None)
            if task:
                task.complete({"by": index})

    assert run_threads(work, len(workers)) == []
    ids = [i for i in claimed if i is not None]
    assert len(ids) == len(set(ids)) == 4
    assert claimed.count(None) == 2
    assert set(TaskRow.objects.values_list("status", flat=True)) == {"completed"}


def test_a_failed_task_with_retry_returns_to_the_queue(connect):
    lead = connect("lead-1", "lead")
    first = connect("docs-1", "docs")
    second = connect("docs-2", "docs")
    lead.create_task("docs", "render", {"doc": "x"})
    task = first.claim()
    assert task.fail("renderer crashed", retry=True).status == "queued"
    again = second.claim()
    assert again.id == task.id and again.attempts == 2


def test_completing_someone_elses_task_is_already_claimed(connect):
    lead = connect("lead-1", "lead")
    owner = connect("docs-1", "docs")
    other = connect("docs-2", "docs")
    lead.create_task("docs", "render", {})
    task = owner.claim()
    with pytest.raises(AlreadyClaimed):
        other.complete_task(task.id, {"stolen": True})
