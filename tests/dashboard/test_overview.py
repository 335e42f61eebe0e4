"""/ (overview) and /policies/: what a human sees at a glance."""

from datetime import timedelta

import pytest
from django.utils import timezone

from contexts.services import context_send
from memoryhub.dashboard.selectors import activity_timeline
from memoryhub.errors import VersionConflict
from memoryhub.events.models import Event
from memoryhub.locks.models import LockWait
from memoryhub.locks.services import lock_acquire
from memoryhub.memories.services import memory_put


def test_overview_shows_agents_events_backlog_locks_and_charts(staff, docs, support, sales, inventory):
    memory_put(actor=docs.actor, namespace="code:style", key="guide", content={"v": 1})
    with pytest.raises(VersionConflict):
        memory_put(actor=docs.actor, namespace="code:style", key="guide", content={"v": 2}, if_match=7)
    context_send(actor=support.actor, to_role="sales", context_type="escalation", content={"a": 1}, requires_ack=True)
    lease = lock_acquire(actor=inventory.actor, resources=["inventory:sku-1"], ttl_seconds=60).lease

    response = staff.get("/")
    context = response.context
    assert {row["agent"].id for row in context["rows"]} == {"docs-1", "support-1", "sales-1", "inventory-1"}
    assert context["events"][0].seq == Event.objects.order_by("-seq").first().seq
    assert context["backlog"] == [
        {"role": "sales", "unread": 1, "awaiting_ack": 1, "oldest": context["backlog"][0]["oldest"]}
    ]
    assert [item["id"] for item in context["leases"]] == [lease.id]
    assert sum(context["timeline"]["conflicts"]) == 1
    page = response.content.decode()
    assert 'id="timeline-data"' in page and 'id="chart-conflicts"' in page
    # The page tells the live script where the log stood when it was rendered.
    assert f'data-since="{Event.objects.order_by("-seq").first().seq}"' in page


def test_timeline_buckets_conflicts_and_lock_waits_over_time(docs, inventory):
    with pytest.raises(VersionConflict):
        memory_put(actor=docs.actor, namespace="code:x", key="k", content={}, if_match=3)
    # Look from ten minutes later (the log is append-only: time is moved by the viewer, not the event).
    later = timezone.now() + timedelta(minutes=10)
    LockWait.objects.create(
        agent_id="inventory-1",
        mode="exclusive",
        resources=["inventory:sku-1"],
        started_at=later - timedelta(minutes=2),
        expected_until=later,
        deadline=later,
        ended_at=later,
        outcome="timeout",
    )
    hour = activity_timeline(range_key="1h", now=later)
    assert len(hour["labels"]) == 60
    assert hour["conflicts"][-11] == 1 and sum(hour["conflicts"]) == 1
    assert hour["lock_waits"][-3] == 1 and hour["lock_timeouts"][-1] == 1
    week = activity_timeline(range_key="7d", now=later)
    assert len(week["labels"]) == 7 and sum(week["conflicts"]) == 1
    assert sum(activity_timeline(range_key="1h", now=later + timedelta(hours=2))["conflicts"]) == 0


def test_overview_range_choice(staff, policies):
    assert staff.get("/?range=24h").context["timeline"]["range"] == "24h"
    assert staff.get("/?range=bogus").context["timeline"]["range"] == "1h"


def test_policies_page_summarises_who_may_do_what(staff, sales):
    response = staff.get("/policies/")
    page = response.content.decode()
    assert "customer:*" in page and "sales, support, product" in page
    assert "the agent named by the trailing *" in page
    assert "locked — the writer must hold the exclusive lock" in page
    assert "<code>deal_stage</code> in <code>customer:*</code> is owned by <strong>sales</strong>" in page
    assert "<strong>sales</strong> defers to <strong>support</strong> on <code>customer:*</code> for 300 s" in page
    assert "/admin/policies/namespacepolicy/" in page
    matrix = {row["rule"].pattern: row["cells"] for row in response.context["matrix"]}
    roles = response.context["roles"]
    assert matrix["customer:vip:*"][roles.index("sales")] == ""
    assert matrix["customer:vip:*"][roles.index("support")] == "read + write"
    assert matrix["agent:private:*"][roles.index("sales")] == "own only"


def test_policies_check_explains_a_decision(staff, sales):
    check = staff.get("/policies/?agent=sales-1&namespace=customer:vip:acme").context["check"]
    assert check["role"] == "sales"
    assert not check["read"].allowed and "customer:vip:*" in check["read"].reason
    check = staff.get("/policies/?role=support&namespace=customer:vip:acme").context["check"]
    assert check["write"].allowed
