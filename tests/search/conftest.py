"""A small labelled corpus (key -> content), paraphrased queries that must find each memory, and
helpers to write it through the memory service and to wait for its embeddings."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from memoryhub.actors import SYSTEM
from memoryhub.memories.services import memory_put
from memoryhub.search.services import embeddings_reconcile, embeddings_update

# (namespace, key, content)
CORPUS = [
    (
        "code:review",
        "pr-101",
        {
            "title": "Fix race in payment retries",
            "body": "Two workers charged the card twice when the retry timer fired during a slow response.",
            "status": "open",
            "n": 3,
        },
    ),
    (
        "code:review",
        "pr-102",
        {
            "title": "Upgrade the logging library",
            "body": "Bumps structlog and switches timestamps to UTC.",
            "status": "merged",
            "n": 1,
        },
    ),
    (
        "code:docs",
        "deploy-runbook",
        {
            "title": "Deployment runbook",
            "steps": [
                "drain the load balancer",
                "run database migrations",
                "roll out the new containers",
                "watch error rates for ten minutes",
            ],
            "status": "open",
            "n": 7,
        },
    ),
    (
        "code:docs",
        "oncall",
        {
            "title": "On-call rotation",
            "body": "Who carries the pager each week and how to hand over.",
            "status": "open",
            "n": 2,
        },
    ),
    (
        "code:review",
        "pr-103",
        {
            "title": "Cache product images",
            "body": "Serve thumbnails from the CDN instead of the application servers.",
            "status": "open",
            "n": 5,
        },
    ),
    (
        "customer:acme",
        "profile",
        {
            "name": "Acme Corp",
            "notes": "Renewal due in March; they asked for a discount on the enterprise plan.",
            "deal_stage": "negotiation",
        },
    ),
    (
        "customer:acme",
        "ticket-9",
        {
            "subject": "Invoices are missing",
            "body": "The customer cannot download their billing statements from the portal.",
            "status": "open",
        },
    ),
    (
        "customer:globex",
        "profile",
        {
            "name": "Globex",
            "notes": "Unhappy with onboarding; threatened to cancel the subscription.",
            "deal_stage": "at risk",
        },
    ),
    (
        "customer:vip:initech",
        "profile",
        {"name": "Initech", "notes": "Executive sponsor wants a quarterly business review."},
    ),
]

# Paraphrases: few or no shared words with their target memory.
PARAPHRASES = [
    ("customer billed two times because of a duplicated retry", ("code:review", "pr-101")),
    ("steps for shipping a release to production", ("code:docs", "deploy-runbook")),
    ("who is on pager duty", ("code:docs", "oncall")),
    ("client wants a lower price when they renew", ("customer:acme", "profile")),
    ("customer may churn after a bad first experience", ("customer:globex", "profile")),
]


def write_corpus() -> None:
    for namespace, key, content in CORPUS:
        memory_put(actor=SYSTEM, namespace=namespace, key=key, content=content, kind="semantic")


def embed_all() -> None:
    """Run the embedding worker's services in this thread until nothing is pending."""
    embeddings_reconcile()
    while embeddings_update():
        pass


def wait_embedded(timeout: float = 60.0) -> None:
    """Wait for the background embedder (transactional tests): until nothing is pending."""
    from memoryhub.search.embedders import embedder_name
    from memoryhub.search.models import Pending
    from memoryhub.search.services import embedder_reconciled
    from memoryhub.search.tasks import embeddings_idle, embeddings_wanted

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        embeddings_idle(timeout=max(deadline - time.monotonic(), 0.1))
        # A new embedder first notes everything to re-embed: until then, nothing pending means nothing.
        if not embedder_reconciled(embedder_name()):
            embeddings_wanted()  # what a search does then: wake the worker (its state may be a flushed table)
        elif not Pending.objects.exists():
            return
        time.sleep(0.05)
    raise AssertionError("embeddings did not land in time")


@pytest.fixture
def corpus(policies):
    write_corpus()
    embed_all()
    return CORPUS


class EmbeddingWorker:
    """Whoever computes embeddings in this configuration, really: the server's background thread in
    the embedded default, or, with Redis configured, a Celery worker process on the test database.
    `held()` keeps it from embedding; `restart(**env)` starts it again with other settings (an
    operator changing the embedder restarts the workers)."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.celery = not settings.MEMORYHUB_EMBED_INPROCESS
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}

    @contextlib.contextmanager
    def held(self):
        if self.celery:
            self.stop()
            try:
                yield
            finally:
                self.start()
        else:
            from memoryhub.search.embedders import current_embedder

            with current_embedder().model._lock:  # the embedder cannot tokenise while this is held
                yield

    def restart(self, **env: str) -> None:
        for name, value in env.items():
            setattr(self.settings, name, value)
        self.env.update(env)
        if self.celery:
            self.stop()
            self.start(nudge=False)  # nothing is sent until something wants embeddings

    def start(self, *, nudge: bool = True) -> None:
        from django.db import connection

        db = connection.settings_dict
        url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        log = Path(tempfile.mkdtemp(prefix="celery-")) / "worker.log"
        command = [sys.executable, "-m", "celery", "-A", "memoryhub", "worker", "--pool=solo", "-l", "info"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        environment = {**os.environ, "DATABASE_URL": url, **self.env}
        with log.open("w") as out:
            self.process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            assert self.process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the Celery worker did not start"
            time.sleep(0.1)
        if nudge:
            from memoryhub.search.tasks import embeddings_wanted

            embeddings_wanted()  # what a write would do: whatever is pending is picked up now

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture
def embedding_worker(settings):
    worker = EmbeddingWorker(settings)
    if worker.celery:
        worker.start()
    yield worker
    worker.stop()
