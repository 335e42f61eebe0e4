"""The memory lifecycle through the client (issue 14), sync and async against the real hub: verify,
staleness, supersession and valid time, include_invalid, a task's working memories."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from memoryhub.actors import SYSTEM
from memoryhub.client import AsyncHubClient, NotFound
from memoryhub.memories.models import Memory as MemoryRow
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

PERIOD = 3600
FACTS = {
    "pattern": "facts:*",
    "readers": ["*"],
    "writers": ["*"],
    "write_mode": "last_write_wins",
    "stale_after_seconds": PERIOD,
}


@pytest.fixture
def facts(policies):
    policies_apply(actor=SYSTEM, document={**TEST_POLICIES, "namespaces": [*TEST_POLICIES["namespaces"], FACTS]})


def age(namespace: str, key: str, seconds: int) -> None:
    """Last verified `seconds` ago (the hub stamps now; the test moves the row's clock, not its own)."""
    then = datetime.now(UTC) - timedelta(seconds=seconds)
    MemoryRow.objects.filter(namespace=namespace, key=key).update(verified_at=then, updated_at=then)


def test_a_stale_fact_is_flagged_and_verify_clears_it_without_a_new_version(facts, connect):
    hub = connect("support-1", "support")
    written = hub.put("facts:product", "price", {"usd": 10}, kind="semantic")
    assert (written.stale, written.verified_by) == (False, "support-1") and written.verified_at

    age("facts:product", "price", PERIOD + 1)
    assert hub.get("facts:product", "price").stale
    assert [m.stale for m in hub.list_memories(namespace="facts:*")] == [True]

    checker = connect("sales-1", "sales")
    verified = checker.verify("facts:product", "price", reason="checked the price list")
    assert (verified.stale, verified.verified_by, verified.version) == (False, "sales-1", 1)
    assert verified.seq and verified.content == {"usd": 10}
    read = hub.get("facts:product", "price")
    assert (read.stale, read.verified_by, read.version) == (False, "sales-1", 1)
    assert [v["type"] for v in hub.history("facts:product", "price")][0] == "memory.verified"


def test_a_superseded_fact_leaves_default_reads_and_is_kept(facts, connect):
    hub = connect("support-1", "support")
    hub.put("facts:product", "price-2025", {"usd": 10}, kind="semantic")
    replacing = hub.put(
        "facts:product", "price-2026", {"usd": 12}, kind="semantic", supersedes=[("facts:product", "price-2025")]
    )
    assert replacing.superseded_by is None

    with pytest.raises(NotFound):
        hub.get("facts:product", "price-2025")
    old = hub.get("facts:product", "price-2025", include_invalid=True)
    assert (old.content, old.superseded_by) == ({"usd": 10}, "facts:product/price-2026")
    assert [m.key for m in hub.list_memories(namespace="facts:product")] == ["price-2026"]
    assert [m.key for m in hub.list_memories(namespace="facts:product", include_invalid=True)] == [
        "price-2025",
        "price-2026",
    ]


def test_valid_until_is_kept_and_a_past_one_hides_the_fact(facts, connect):
    hub = connect("support-1", "support")
    until = datetime.now(UTC) + timedelta(days=1)
    written = hub.put("facts:promo", "spring", {"off": 0.2}, kind="semantic", valid_until=until)
    assert datetime.fromisoformat(written.valid_until) == until

    MemoryRow.objects.filter(namespace="facts:promo", key="spring").update(valid_until=datetime.now(UTC))
    with pytest.raises(NotFound):
        hub.get("facts:promo", "spring")
    assert hub.get("facts:promo", "spring", include_invalid=True).content == {"off": 0.2}


def test_list_memories_by_task_gives_that_tasks_working_memories(policies, connect):
    hub = connect("docs-1", "docs")
    hub.put("task:7", "plan", {"step": 1}, kind="working")
    hub.put("task:7:sub", "notes", {"step": 2}, kind="working")
    hub.put("task:70", "plan", {"step": 1}, kind="working")
    assert [m.resource for m in hub.list_memories(task=7)] == ["task:7/plan", "task:7:sub/notes"]
    assert [m.resource for m in hub.all_memories(task=70)] == ["task:70/plan"]


@pytest.fixture
def hub_async(connect):
    """hub_async(agent_id, role) -> the token of a new agent, for async clients the test opens."""
    return lambda agent_id, role: connect(agent_id, role).persona.token


def test_the_async_client_verifies_supersedes_and_reads_invalid_facts(facts, hub_url, hub_async):
    token = hub_async("support-1", "support")

    async def write():
        async with AsyncHubClient(hub_url, token=token) as hub:
            await hub.put("facts:product", "price-2025", {"usd": 10}, kind="semantic")

    async def check():
        async with AsyncHubClient(hub_url, token=token) as hub:
            stale = await hub.get("facts:product", "price-2025")
            verified = await hub.verify("facts:product", "price-2025")
            await hub.put("facts:product", "price-2026", {"usd": 12}, supersedes=[("facts:product", "price-2025")])
            with pytest.raises(NotFound):
                await hub.get("facts:product", "price-2025")
            old = await hub.get("facts:product", "price-2025", include_invalid=True)
            listed = await hub.list_memories(namespace="facts:*", include_invalid=True)
            return stale, verified, old, listed

    asyncio.run(write())
    age("facts:product", "price-2025", PERIOD + 1)  # between the loops: the ORM is sync
    stale, verified, old, listed = asyncio.run(check())
    assert stale.stale and not verified.stale and verified.version == 1
    assert old.superseded_by == "facts:product/price-2026"
    assert [(m.key, m.superseded_by) for m in listed] == [
        ("price-2025", "facts:product/price-2026"),
        ("price-2026", None),
    ]
