import json
import socket
import time

import pytest
from django.test import Client


def test_healthz_answers(db):
    assert Client().get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_database_channel_layer_and_broker(db):
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "channel_layer", "broker", "embeddings"}
    assert "backlog" in body["checks"]["embeddings"]  # reported, never a reason to be not ready


def test_readyz_reports_a_broken_dependency_with_503(db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error")
    assert response.json()["failed"] == ["broker"]


def test_metrics_are_prometheus_text_from_the_database(policies, make_agent):
    writer = make_agent("w-1", "worker")
    writer.client.put("/api/v1/memories/scratch:a/k/", json.dumps({"content": {}}), content_type="application/json")
    response = Client().get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'memoryhub_agents{status="active"} 1.0' in text
    assert "memoryhub_memories_live 1.0" in text
    assert 'memoryhub_events_recent{type="memory.created"} 1.0' in text


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers: what a paused (SIGSTOPped) Redis looks like."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        listener.close()


def test_readyz_answers_within_3_seconds_naming_what_hangs(db, settings, silent_server):
    settings.CELERY_BROKER_URL = silent_server
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": silent_server}]},
        }
    }
    started = time.monotonic()
    response = Client().get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["channel_layer", "broker"]
    assert body["checks"]["database"] == "ok"
    assert elapsed < 3, elapsed
    # Probing again while the first checks are still stuck neither waits longer nor starts more of them.
    started = time.monotonic()
    assert Client().get("/readyz").status_code == 503
    assert time.monotonic() - started < 3
