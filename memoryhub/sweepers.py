"""Periodic housekeeping, as Celery tasks (beat in production; a task of the server's event loop in the
embedded default). Correctness never waits for these: expired memories, leases, claims and entries are
already treated as gone by every read and write; sweepers record the fact as events and tidy up."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from asgiref.sync import sync_to_async
from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone

from memoryhub.api.models import IdempotencyRecord

log = logging.getLogger(__name__)
LAST_SWEEP_KEY = "memoryhub:last_sweep"


@shared_task(name="memoryhub.sweepers.sweep")
def sweep() -> dict[str, int]:
    """One pass of every sweeper; returns how much each did."""
    from contexts.services import contexts_expire
    from memoryhub.locks.services import leases_expire, lock_alerts_raise, lock_waits_close_abandoned
    from memoryhub.memories.services import episodic_prune, memories_expire, stale_announce
    from memoryhub.memories.summaries import episodes_summarize
    from memoryhub.tallies.services import tallies_fold
    from memoryhub.tasks.services import claims_requeue_expired

    now = timezone.now()
    done = {}
    for name, job in (
        ("memories_expired", lambda: memories_expire(now=now)),
        ("episodic_pruned", lambda: episodic_prune(now=now)),
        ("stale_announced", lambda: stale_announce()),
        ("episodes_summarized", lambda: episodes_summarize()),
        ("contexts_expired", lambda: contexts_expire(now=now)),
        ("leases_expired", lambda: leases_expire(now=now)),
        ("claims_requeued", lambda: claims_requeue_expired(now=now)),
        ("alerts_raised", lambda: lock_alerts_raise(now=now)),
        ("lock_waits_abandoned", lambda: lock_waits_close_abandoned(now=now)),
        ("tallies_folded", tallies_fold),
    ):
        try:
            done[name] = job()
        except Exception:  # one failing sweeper must not starve the others
            log.exception("sweeper %s failed", name)
            done[name] = -1
    cache.set(LAST_SWEEP_KEY, now, timeout=None)  # coordination_check reads it to tell beat is alive
    return done


@shared_task(name="memoryhub.sweepers.prune_idempotency_keys")
def prune_idempotency_keys() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.MEMORYHUB_IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def _sweep_in_thread() -> None:
    try:
        sweep()
        prune_idempotency_keys()
    finally:
        close_old_connections()


class InProcessSweeper:
    """ASGI wrapper for the embedded default (no Celery beat): starts the sweep loop on the server's
    event loop with the first connection, so publishes from sweepers reach the in-memory layer."""

    def __init__(self, application) -> None:
        self.application = application
        self.task: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        if self.task is None and settings.MEMORYHUB_INPROCESS_SWEEPER and scope["type"] in ("http", "websocket"):
            self.task = asyncio.get_running_loop().create_task(self._loop())
        return await self.application(scope, receive, send)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(settings.MEMORYHUB_SWEEP_INTERVAL)
            try:
                await sync_to_async(_sweep_in_thread, thread_sensitive=False)()
            except Exception:
                log.exception("in-process sweep failed")
