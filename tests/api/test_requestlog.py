"""One JSON log line per request (request id, agent, method, route, status, duration, seqs written),
and the process metrics on /metrics: request durations by route and status, idempotency replays,
websocket connections, catch-up reads, publish failures."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.test import Client


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(record.getMessage()))


@pytest.fixture
def request_log():
    logger = logging.getLogger("memoryhub.request")
    handler = Lines()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def agent(policies, make_agent):
    return make_agent("sales-1", "sales")


def _put(agent, path, body, **headers):
    return agent.client.put(path, json.dumps(body), content_type="application/json", **headers)


@pytest.mark.django_db(transaction=True)  # seqs are noted as they are published, after commit
def test_a_write_logs_one_line_with_its_seq_agent_route_and_status(agent, request_log):
    response = _put(agent, "/api/v1/memories/customer:a/k/", {"content": {"n": 1}})
    assert response.status_code == 201
    [line] = request_log
    assert line["method"] == "PUT"
    assert line["route"] == "api/v1/memories/<str:namespace>/<str:key>/"
    assert line["path"] == "/api/v1/memories/customer:a/k/"
    assert line["status"] == 201
    assert line["agent"] == "sales-1"
    assert line["seqs"] == [response.json()["seq"]]
    assert line["replayed"] is False
    assert line["duration_ms"] > 0
    assert line["request_id"] == response["X-Request-ID"]


def test_a_read_and_a_refusal_log_no_seqs(agent, request_log):
    agent.client.get("/api/v1/me/")
    _put(agent, "/api/v1/memories/customer:a/k/", {"content": "not an object"})
    assert [(line["status"], line["seqs"]) for line in request_log] == [(200, []), (400, [])]


def test_x_request_id_is_honoured_or_generated(agent, request_log):
    given = agent.client.get("/api/v1/me/", HTTP_X_REQUEST_ID="lb-1234.abc")
    assert given["X-Request-ID"] == "lb-1234.abc"
    generated = agent.client.get("/api/v1/me/")
    assert re.fullmatch(r"[0-9a-f]{32}", generated["X-Request-ID"])
    # Not a plain token (spaces, quotes, too long): replaced, never echoed into a log line or header.
    odd = agent.client.get("/api/v1/me/", HTTP_X_REQUEST_ID='x" y')
    assert re.fullmatch(r"[0-9a-f]{32}", odd["X-Request-ID"])
    assert [line["request_id"] for line in request_log] == [
        "lb-1234.abc",
        generated["X-Request-ID"],
        odd["X-Request-ID"],
    ]


def test_refused_before_any_view_still_logged_with_an_id(agent, request_log):
    response = agent.client.get("/api/v1/events/?type=x%00")
    assert response.status_code == 400
    assert response["X-Request-ID"]
    assert request_log[0]["status"] == 400
    assert request_log[0]["route"] == "unmatched"


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_route_and_status_and_idempotency_replays(agent):
    route = "api/v1/memories/<str:namespace>/<str:key>/"
    before = Client().get("/metrics").content.decode()
    _put(agent, "/api/v1/memories/customer:a/k/", {"content": {}}, HTTP_IDEMPOTENCY_KEY="once")
    replay = _put(agent, "/api/v1/memories/customer:a/k/", {"content": {}}, HTTP_IDEMPOTENCY_KEY="once")
    assert replay["Idempotent-Replayed"] == "true"
    after = Client().get("/metrics").content.decode()
    count = "memoryhub_request_duration_seconds_count"
    assert _metric(after, count, route=route, status="201") - _metric(before, count, route=route, status="201") == 2
    replays = "memoryhub_idempotency_replays_total"
    assert _metric(after, replays) - _metric(before, replays) == 1
    for name in ("memoryhub_websocket_connections", "memoryhub_websocket_catch_up_reads_total"):
        assert name in after
    assert "memoryhub_publish_failures_total" in after
