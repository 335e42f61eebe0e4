"""Every statement in an app's queries.py, run against the database this suite runs on (CI runs the
suite on SQLite and on PostgreSQL, so each is run on both): each must give what the ORM reads."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from contexts import queries as context_queries
from contexts.models import ContextEntry, Receipt
from memoryhub.actors import SYSTEM
from memoryhub.agents import queries as agent_queries
from memoryhub.agents.models import token_digest
from memoryhub.events import queries as event_queries
from memoryhub.events.models import Event, EventSequence
from memoryhub.locks import queries as lock_queries
from memoryhub.locks.models import Hold, Lease, LeaseResource, LockResource
from memoryhub.memories import queries as memory_queries
from memoryhub.memories.models import Memory
from memoryhub.tasks import queries as task_queries
from memoryhub.tasks.models import Task
from policies import queries as policy_queries
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES, on_postgres

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_agents_token_lookup_and_status_lock(make_agent):
    persona = make_agent("worker-1", "worker")
    ((agent, (policy_seq, policy_at, any_hold)),) = agent_queries.agent_for_digest(token_digest(persona.token))
    assert fields(agent) == fields(persona.agent)
    assert (policy_seq, policy_at, bool(any_hold)) == (None, None, False)
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)
    Hold.objects.create(resource="x", placed_by="human:a", placed_at=AT)
    ((_, (policy_seq, policy_at, any_hold)),) = agent_queries.agent_for_digest(token_digest(persona.token))
    newest = Event.objects.filter(type="policy.changed").order_by("-seq").first()
    assert (policy_seq, bool(any_hold)) == (newest.seq, True)
    seq, at = policy_queries.newest_policy_change()
    # A cache key, compared with itself only: SQLite hands the time over naive.
    assert (seq, str(at)[:26]) == (newest.seq, str(newest.at.replace(tzinfo=None))[:26])
    assert agent_queries.agent_for_digest(token_digest("nobody")) == []
    assert agent_queries.agent_status_locked("worker-1") == "active"
    assert agent_queries.agent_status_locked("nobody") is None


def test_memories_row_read_and_conditional_write(make_agent):
    memory = Memory.objects.create(
        namespace="ns:a",
        key="k",
        content={"n": 1},
        version=1,
        created_by="w",
        updated_by="w",
        created_at=AT,
        updated_at=AT,
        expires_at=AT,
    )
    read = memory_queries.fetch_memory("ns:a", "k")
    assert fields(read) == fields(Memory.objects.get(id=memory.id))
    assert memory_queries.fetch_memory("ns:a", "missing") is None
    read.content, read.version = {"n": 2}, 2
    assert not memory_queries.memory_save_existing(read, unchanged_since=(5, AT))  # not as it was read
    assert memory_queries.memory_save_existing(read, unchanged_since=(1, AT))
    assert Memory.objects.get(id=memory.id).content == {"n": 2}
    read.content = {"n": 3}
    assert memory_queries.memory_save_existing(read)
    assert Memory.objects.get(id=memory.id).content == {"n": 3}


def test_memories_of_a_namespace_tree_expire_together():
    def make(namespace):
        return Memory.objects.create(
            namespace=namespace,
            key="k",
            content={},
            version=1,
            created_by="w",
            updated_by="w",
            created_at=AT,
            updated_at=AT,
        )

    inside = [make("task:7"), make("task:7:step_1")]
    outside = [make("task:70"), make("task:7x"), make("task:8")]
    gone = make("task:7:old")
    Memory.objects.filter(id=gone.id).update(deleted_at=AT)
    assert memory_queries.memories_expire_namespace_tree(namespace="task:7", at=AT) == 2
    assert all(Memory.objects.get(id=m.id).expires_at == AT for m in inside)
    assert all(Memory.objects.get(id=m.id).expires_at is None for m in [*outside, gone])
    assert memory_queries.memories_expire_namespace_tree(namespace="task:7", at=AT) == 0  # already expired


def test_tasks_claim_extend_and_complete(make_agent):
    agent = make_agent("worker-1", "worker").agent
    low = Task.objects.create(role="worker", kind="index", payload={}, priority=0, created_by="docs-1")
    high = Task.objects.create(role="worker", kind="render", payload={}, priority=5, created_by="docs-1")
    assert not task_queries.lapsed_claims_exist(role="worker", at=AT)
    claimed = task_queries.claim_next(agent_id=agent.id, role="worker", kinds=None, at=AT, ttl=timedelta(seconds=60))
    assert claimed.id == high.id
    assert fields(claimed) == fields(Task.objects.get(id=high.id))
    assert task_queries.claim_next(agent_id=agent.id, role="worker", kinds=["render"], at=AT, ttl=timedelta(1)) is None
    assert task_queries.lapsed_claims_exist(role="worker", at=AT + timedelta(seconds=61))
    assert not task_queries.lapsed_claims_exist(role="other", at=AT + timedelta(seconds=61))
    until = AT + timedelta(seconds=90)
    extended = task_queries.claim_extend(task_id=high.id, agent_id=agent.id, until=until, now=AT)
    assert extended.claim_expires_at == until == Task.objects.get(id=high.id).claim_expires_at
    assert task_queries.claim_extend(task_id=low.id, agent_id=agent.id, until=until, now=AT) is None
    done = task_queries.claim_complete(
        task_id=high.id, agent_id=agent.id, completed_by=agent.id, result={"ok": [1]}, now=AT
    )
    assert fields(done) == fields(Task.objects.get(id=high.id))
    assert done.result == {"ok": [1]}
    assert (
        task_queries.claim_complete(task_id=high.id, agent_id=agent.id, completed_by="x", result=None, now=AT) is None
    )


def test_locks_statements(make_agent):
    agent = make_agent("worker-1", "worker").agent
    LockResource.objects.create(name="a")
    LockResource.objects.create(name="b")
    now = timezone.now()
    lease = Lease(
        agent_id=agent.id,
        mode="exclusive",
        resources=["a", "b"],
        ttl_seconds=30,
        acquired_at=now,
        expires_at=now + timedelta(seconds=30),
    )
    lease_id = lock_queries.lease_insert(lease, waited_ms=12)
    stored = Lease.objects.get(id=lease_id)
    assert (stored.fencing_token, stored.resources, stored.depth) == (lease_id, ["a", "b"], 1)
    assert sorted(LeaseResource.objects.filter(lease_id=lease_id).values_list("resource", "active")) == [
        ("a", True),
        ("b", True),
    ]
    assert list(
        LockResource.objects.order_by("name").values_list("acquired_count", "waited_count", "wait_ms_total")
    ) == [
        (1, 1, 12),
        (1, 1, 12),
    ]
    assert lock_queries.exclusive_lease_on("a").id == lease_id
    assert [(lease.id, resource, mode) for lease, resource, mode in lock_queries.holdings_of(["a", "b", "c"])] == [
        (lease_id, "a", "exclusive"),
        (lease_id, "b", "exclusive"),
    ]
    assert lock_queries.resources_lock(["a", "b", "c"], covering=["a", "ns"]) == ({"a", "b"}, None)
    hold = Hold.objects.create(resource="ns", placed_by="human:a", placed_at=AT)
    assert lock_queries.resources_lock(["a", "b"], covering=["a", "ns"]) == ({"a", "b"}, hold.id)
    assert lock_queries.hold_on_any(["ns", "other"]).id == hold.id
    assert lock_queries.hold_on_any(["other"]) is None
    digest = Lease.objects.get(id=lease_id).holder_digest
    for agent_id, proof in (("someone-else", digest), (agent.id, "not the holder's digest")):
        assert (
            lock_queries.lease_end_last_level(agent_id=agent_id, digest=proof, lease_id=lease_id, now=timezone.now())
            is None
        )
    ended = lock_queries.lease_end_last_level(agent_id=agent.id, digest=digest, lease_id=lease_id, now=timezone.now())
    assert fields(ended) == fields(Lease.objects.get(id=lease_id))
    assert ended.release_reason == "released"
    assert not LeaseResource.objects.filter(lease_id=lease_id, active=True).exists()


def test_events_numbered_and_plain_inserts():
    from django.db import transaction

    with transaction.atomic():
        last = event_queries.next_seqs(2)
    assert EventSequence.objects.get(id=1).last == last
    rows = [
        Event(type="t.one", actor_kind="system", actor_id="system", namespace="ns", resource="ns/k", after={"a": 1}),
        Event(type="t.two", actor_kind="system", actor_id="system", audience=["agent:x"]),
    ]
    with transaction.atomic():
        if on_postgres():  # the one statement PostgreSQL appends with
            event_queries.numbered_insert(rows)
        else:
            top = event_queries.next_seqs(len(rows))
            for offset, row in enumerate(rows):
                row.seq, row.at = top - len(rows) + 1 + offset, AT
            event_queries.insert(rows)
    assert [row.seq for row in rows] == [last + 1, last + 2]
    for row in rows:
        assert fields(Event.objects.get(seq=row.seq)) | {"at": None} == fields(row) | {"at": None}


@pytest.mark.skipif(not on_postgres(), reason="elsewhere the key is claimed by a statement of its own")
def test_events_numbered_insert_claims_the_key_or_inserts_nothing():
    from django.db import transaction

    from memoryhub.api.idempotency import Claim
    from memoryhub.api.models import IdempotencyRecord

    claim = Claim.of(principal="agent:a", key="k", method="PUT", path="/p", body=b"{}")
    row = Event(type="t.one", actor_kind="system", actor_id="system", idempotency_key="k")
    with transaction.atomic():
        assert event_queries.numbered_insert([row], claim=claim)
    record = IdempotencyRecord.objects.get()
    assert (record.principal, record.key, record.fingerprint, record.token) == (
        "agent:a",
        "k",
        claim.fingerprint,
        claim.token,
    )
    assert (record.status_code, bytes(record.response_body), record.content_type) == (None, b"", "")
    assert fields(Event.objects.get(seq=row.seq)) | {"at": None} == fields(row) | {"at": None}
    last = EventSequence.objects.get(id=1).last
    # The key taken (a repeat, with its own token): no seq reserved, no event, the record unchanged.
    again = Claim.of(principal="agent:a", key="k", method="PUT", path="/p", body=b"{}")
    other = Event(type="t.two", actor_kind="system", actor_id="system", idempotency_key="k")
    assert not event_queries.numbered_insert([other], claim=again)  # autocommit: nothing to roll back
    assert EventSequence.objects.get(id=1).last == last
    assert not Event.objects.filter(type="t.two").exists()
    assert IdempotencyRecord.objects.get().token == claim.token


def test_inbox_send_page_and_acks(make_agent):
    sender = make_agent("planner-1", "planner").agent
    make_agent("worker-1", "worker")
    make_agent("worker-2", "worker")
    entry = ContextEntry(
        from_agent_id=sender.id,
        from_role="planner",
        sender=sender.id,
        to_role="worker",
        namespace="role:worker",
        context_type="note",
        subject="s",
        content={"x": 1},
        created_at=AT,
    )
    assert context_queries.entry_insert_with_receipts(entry) == 2
    assert ContextEntry.objects.get(id=entry.id).content == {"x": 1}
    statement, params = context_queries.inbox_query(
        agent_id="worker-1", state="unread", context_type=None, since=0, limit=10, now=AT
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        (row,) = cursor.fetchall()
    assert row[0] == entry.id
    receipt = Receipt.objects.get(entry_id=entry.id, agent_id="worker-1")
    rows = context_queries.receipts_lock_for_ack(agent_id="worker-1", entry_ids=[entry.id])
    assert [(r[0], r[1]) for r in rows] == [(receipt.id, entry.id)]
    written = context_queries.receipts_ack([receipt.id], "done", AT)
    assert written == {receipt.id: (AT, AT)}
    assert context_queries.receipts_ack([receipt.id], "again", AT) == {}
    assert Receipt.objects.get(id=receipt.id).ack_note == "done"
