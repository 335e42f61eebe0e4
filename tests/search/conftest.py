"""A small labelled corpus (key -> content), paraphrased queries that must find each memory, and
helpers to write it through the memory service and to wait for its embeddings."""

from __future__ import annotations

import time

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
    """Wait for the in-process background embedder (transactional tests): until nothing is pending."""
    from memoryhub.search.models import Pending
    from memoryhub.search.tasks import embeddings_idle

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        embeddings_idle(timeout=max(deadline - time.monotonic(), 0.1))
        if not Pending.objects.exists():
            return
        time.sleep(0.05)
    raise AssertionError("embeddings did not land in time")


@pytest.fixture
def corpus(policies):
    write_corpus()
    embed_all()
    return CORPUS
