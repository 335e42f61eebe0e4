"""Real threads against the real database (SQLite file by default, PostgreSQL with DATABASE_URL):
senders and acking recipients at once, duplicate acks racing, the sweeper racing bulk acks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from contexts.models import ContextEntry, Receipt
from contexts.selectors import inbox_list
from contexts.services import context_ack, context_send, contexts_ack_bulk, contexts_expire
from memoryhub.actors import SYSTEM, Actor
from memoryhub.agents.services import agent_create
from memoryhub.events.models import Event
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES

SENDERS = 8
PER_SENDER = 10
RECIPIENTS = 4
DEADLINE_SECONDS = 120


def run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrapper(target: Callable[[], None]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapper, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SECONDS + 30)
    return errors


def make_actors(role: str, count: int, prefix: str) -> list[Actor]:
    return [Actor.for_agent(agent_create(actor=SYSTEM, agent_id=f"{prefix}-{i}", role=role)[0]) for i in range(count)]


@pytest.mark.django_db(transaction=True)
def test_eight_senders_and_four_acking_recipients_leave_exact_receipts():
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)
    senders = make_actors("support", SENDERS, "support")
    recipients = make_actors("sales", RECIPIENTS, "sales")
    total = SENDERS * PER_SENDER

    def sender(actor: Actor) -> Callable[[], None]:
        def run() -> None:
            for n in range(PER_SENDER):
                context_send(
                    actor=actor, to_role="sales", context_type="escalation", content={"n": n}, requires_ack=True
                )

        return run

    def recipient(actor: Actor) -> Callable[[], None]:
        def run() -> None:
            acked = 0
            deadline = time.monotonic() + DEADLINE_SECONDS
            while acked < total:
                assert time.monotonic() < deadline, f"{actor.id} acked only {acked} of {total}"
                page = inbox_list(agent_id=actor.id, state="unacked", limit=7)
                if not page:
                    time.sleep(0.005)  # senders still sending; correctness does not depend on this
                    continue
                # Alternate single and bulk acks, so both paths race the senders.
                if acked % 2:
                    for item in page:
                        assert context_ack(actor=actor, entry_id=item["id"], note=actor.id)[1] is not None
                else:
                    _, events = contexts_ack_bulk(actor=actor, ids=[item["id"] for item in page], note=actor.id)
                    assert len(events) == len(page)
                acked += len(page)

        return run

    errors = run_threads([sender(a) for a in senders] + [recipient(a) for a in recipients])

    assert errors == []
    assert ContextEntry.objects.count() == total
    assert Receipt.objects.count() == total * RECIPIENTS
    for actor in recipients:
        mine = Receipt.objects.filter(agent_id=actor.id)
        assert mine.count() == total
        assert mine.filter(acked_at__isnull=False, read_at__isnull=False, ack_note=actor.id).count() == total
        assert Event.objects.filter(type="context.acked", actor_id=actor.id).count() == total
    assert Event.objects.filter(type="context.sent").count() == total
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps, no duplicates


@pytest.mark.django_db(transaction=True)
def test_racing_duplicate_acks_write_one_event():
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)
    [sender] = make_actors("support", 1, "support")
    [alice] = make_actors("sales", 1, "sales")
    entry, _ = context_send(actor=sender, to_role="sales", context_type="note", content={})
    results: list[object] = []

    def ack() -> None:
        results.append(context_ack(actor=alice, entry_id=entry.id, note="once")[1])

    assert run_threads([ack] * 6) == []
    assert sum(event is not None for event in results) == 1
    assert Event.objects.filter(type="context.acked").count() == 1


@pytest.mark.django_db(transaction=True)
def test_sweeper_and_bulk_acks_racing_neither_deadlock_nor_lose_writes():
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)
    [sender] = make_actors("support", 1, "support")
    recipients = make_actors("sales", 3, "sales")
    ids = [
        context_send(actor=sender, to_role="sales", context_type="note", content={"n": n}, ttl_seconds=1)[0].id
        for n in range(30)
    ]
    later = timezone.now() + timedelta(seconds=5)

    def bulk(actor: Actor) -> Callable[[], None]:
        return lambda: contexts_ack_bulk(actor=actor, ids=list(reversed(ids)))

    def sweep() -> None:
        while contexts_expire(now=later, limit=7):
            pass

    errors = run_threads([bulk(a) for a in recipients] + [sweep, sweep])

    assert errors == []
    assert Receipt.objects.filter(acked_at__isnull=False, entry_expired=True).count() == 30 * 3
    assert Event.objects.filter(type="context.expired").count() == 30
    assert Event.objects.filter(type="context.acked").count() == 30 * 3
