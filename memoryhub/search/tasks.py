"""Where embeddings are computed: never in the request that wrote the memory.

After a memory write commits, `embeddings_wanted()` wakes the embedder: a Celery task on the worker
in production (at most one enqueue per process per NUDGE_SECONDS; beat runs the same task every 30 s
as a safety net), or a background thread of this process in the embedded default
(MEMORYHUB_EMBED_INPROCESS). Either way the work is `services.embeddings_update` until nothing is
pending.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections, connection

from .embedders import Unavailable, embedder_name
from .services import embedder_reconciled, embeddings_reconcile, embeddings_update

log = logging.getLogger(__name__)
NUDGE_SECONDS = 0.2
TASK_SECONDS = 20.0


def _reconcile_if_new() -> None:
    """A new embedder (or a first start) re-embeds everything in the background, once."""
    name = embedder_name()
    if name is None or embedder_reconciled(name):
        return
    noted = embeddings_reconcile()
    log.info("search: %d memories to (re-)embed with %s", noted, name)


def drain(*, seconds: float = TASK_SECONDS) -> int:
    """Embed pending memories for up to `seconds`; returns how many were settled."""
    _reconcile_if_new()
    done, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            settled = embeddings_update()
        except Unavailable as exc:
            log.warning("search: cannot embed: %s", exc)
            break
        if not settled:
            break
        done += settled
    return done


@shared_task(name="memoryhub.search.tasks.embed_pending", ignore_result=True)
def embed_pending() -> int:
    done = drain()
    from .services import embedding_backlog

    if done and embedding_backlog():
        embed_pending.apply_async(retry=False)  # more than one task's worth: continue in a fresh task
    return done


class _Worker:
    """The embedded default's embedder: one daemon thread, woken after each write's commit."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.thread = threading.Thread(target=self._run, name="memoryhub-embedder", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            try:
                while drain(seconds=5.0):
                    pass
            except Exception:  # never let the thread die: the next write wakes it again
                log.exception("search: embedding pass failed")
            finally:
                close_old_connections()
                connection.close()
            if not self.wake.is_set():
                self.idle.set()

    def nudge(self) -> None:
        self.idle.clear()
        self.wake.set()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _inprocess_worker() -> _Worker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Worker()
        return _worker


class _Enqueuer:
    """Production's side of the nudge: one daemon thread that sends the Celery task, so no request
    ever waits on the broker (a paused Redis would hold `apply_async` for as long as the pause)."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        threading.Thread(target=self._run, name="memoryhub-embed-enqueue", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            try:
                embed_pending.apply_async(retry=False)
            except Exception:  # broker down: beat's periodic task (or the next write) picks the rows up
                log.warning("search: could not enqueue embedding", exc_info=True)
            time.sleep(NUDGE_SECONDS)  # at most one task per interval: each drains everything pending


_enqueuer: _Enqueuer | None = None


def embeddings_wanted() -> None:
    """Called after a memory write commits: have its new version embedded soon, without waiting."""
    global _enqueuer
    if getattr(settings, "MEMORYHUB_EMBED_INPROCESS", True):
        _inprocess_worker().nudge()
        return
    with _worker_lock:
        if _enqueuer is None:
            _enqueuer = _Enqueuer()
    _enqueuer.wake.set()


def embeddings_idle(timeout: float = 30.0) -> bool:
    """Wait until the in-process embedder has nothing left to do (tests, `make run` demo)."""
    if _worker is None:
        return True
    return _worker.idle.wait(timeout)
