"""One sweep records every kind of lapse as an event: expired memories, entries, leases and claims,
and raises alert.lock_wait for a lease held past twice its TTL. It runs as a Celery task (eager here)."""

from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone

from contexts.models import ContextEntry
from contexts.services import context_send
from memoryhub.events.models import Event
from memoryhub.locks.models import Lease
from memoryhub.locks.services import lock_acquire
from memoryhub.memories.models import Memory
from memoryhub.memories.services import memory_put
from memoryhub.sweepers import LAST_SWEEP_KEY, sweep
from memoryhub.tasks.models import Task
from memoryhub.tasks.services import task_claim, task_create


def test_one_sweep_records_every_lapse_once(policies, make_agent):
    sales = make_agent("sales-1", "sales")
    support = make_agent("support-1", "support")
    worker = make_agent("worker-1", "worker")
    past = timezone.now() - timedelta(seconds=5)

    memory_put(actor=sales.actor, namespace="scratch:x", key="k", content={}, ttl_seconds=60)
    Memory.objects.update(expires_at=past)
    context_send(actor=sales.actor, to_role="support", context_type="note", content={}, ttl_seconds=60)
    ContextEntry.objects.update(expires_at=past)
    lock_acquire(actor=support.actor, resources=["pricing-table"], ttl_seconds=30)
    Lease.objects.update(expires_at=past)
    task_create(actor=sales.actor, role="worker", kind="index", payload={})
    task_claim(actor=worker.actor, ttl_seconds=30)
    Task.objects.update(claim_expires_at=past)

    done = sweep.apply().get()  # the Celery task, run here (beat queues it to a worker in production)
    # Every sweeper ran (a failing one would report -1) and each found its one lapse.
    assert done == {
        "memories_expired": 1,
        "episodic_pruned": 0,
        "stale_announced": 0,
        "episodes_summarized": 0,
        "contexts_expired": 1,
        "leases_expired": 1,
        "claims_requeued": 1,
        "alerts_raised": 0,
        "lock_waits_abandoned": 0,
        "tallies_folded": 0,
    }
    for event_type in ("memory.expired", "context.expired", "lock.expired", "task.requeued"):
        assert Event.objects.filter(type=event_type).count() == 1, event_type
    assert Task.objects.get().status == "queued"
    assert cache.get(LAST_SWEEP_KEY) is not None
    # A second sweep finds nothing new, and records nothing.
    seq = Event.objects.latest("seq").seq
    assert sweep() == dict.fromkeys(done, 0)
    assert Event.objects.latest("seq").seq == seq


def test_a_lease_held_past_twice_its_ttl_raises_one_alert(policies, make_agent):
    support = make_agent("support-1", "support")
    grant = lock_acquire(actor=support.actor, resources=["pricing-table"], ttl_seconds=10)
    # Held for 25 s (heartbeats kept it alive) — more than twice the 10 s it said it needed.
    Lease.objects.filter(id=grant.lease.id).update(
        acquired_at=timezone.now() - timedelta(seconds=25), expires_at=timezone.now() + timedelta(seconds=5)
    )
    first, second = sweep(), sweep()
    assert (first["alerts_raised"], second["alerts_raised"]) == (1, 0)  # raised by the first, once
    alerts = Event.objects.filter(type="alert.lock_wait")
    assert alerts.count() == 1
    assert "pricing-table" in alerts.get().resource
    assert alerts.get().after["lease_id"] == grant.lease.id


def test_a_wait_left_open_by_a_dead_request_is_closed_as_abandoned(policies, make_agent):
    """A waiter closes its row at its deadline; a row still open well past it belongs to a request
    whose server process died (the fault test kills one): the sweep closes it, and only it."""
    from memoryhub.locks.acquire import ABANDONED_WAIT_GRACE
    from memoryhub.locks.models import LockWait

    agent = make_agent("worker-1", "worker")
    now = timezone.now()

    def wait(deadline):
        return LockWait.objects.create(
            agent=agent.agent,
            mode="exclusive",
            resources=["r"],
            started_at=now - timedelta(minutes=1),
            expected_until=now,
            deadline=deadline,
        )

    dead = wait(now - ABANDONED_WAIT_GRACE - timedelta(seconds=1))
    finishing = wait(now - timedelta(seconds=1))  # past its deadline, but its last attempt may be running
    waiting = wait(now + timedelta(seconds=10))
    assert sweep.apply().get()["lock_waits_abandoned"] == 1
    dead.refresh_from_db()
    assert dead.ended_at is not None and dead.outcome == "abandoned"
    assert LockWait.objects.filter(id__in=[finishing.id, waiting.id], ended_at=None).count() == 2
