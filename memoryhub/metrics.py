"""GET /metrics: Prometheus gauges read from the database at scrape time, so every server process
reports the same truth, and this process's own counters (requests, websockets, publishes).

The process counters are per process. Behind gunicorn's workers a scrape reaches one of them: set
PROMETHEUS_MULTIPROC_DIR to an empty directory shared by the workers (prometheus-client's multiprocess
mode) and every scrape adds up all of them.
"""

from __future__ import annotations

import os
from datetime import timedelta

from django.db.models import Count, Sum
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

RECENT = timedelta(minutes=5)


class HubCollector:
    def collect(self):
        from contexts.models import Receipt
        from memoryhub.agents.models import Agent
        from memoryhub.events.models import Event
        from memoryhub.locks.models import Lease, LockResource
        from memoryhub.memories.selectors import memories_live
        from memoryhub.tasks.selectors import tasks_by_status

        now = timezone.now()
        last = Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        yield GaugeMetricFamily("memoryhub_event_last_seq", "Seq of the newest event in the log", value=last)

        recent = GaugeMetricFamily("memoryhub_events_recent", "Events in the last 5 minutes by type", labels=["type"])
        for row in Event.objects.filter(at__gte=now - RECENT).values("type").annotate(n=Count("seq")):
            recent.add_metric([row["type"]], row["n"])
        yield recent

        agents = GaugeMetricFamily("memoryhub_agents", "Agents by status", labels=["status"])
        for row in Agent.objects.values("status").annotate(n=Count("id")):
            agents.add_metric([row["status"]], row["n"])
        yield agents

        yield GaugeMetricFamily("memoryhub_memories_live", "Memories not deleted", value=memories_live())
        from memoryhub.memories.selectors import stale_counts
        from policies.selectors import policy_set

        yield GaugeMetricFamily(
            "memoryhub_memories_stale",
            "Semantic memories past their namespace's stale_after_seconds, not re-verified",
            value=sum(stale_counts(policies=policy_set(), now=now).values()),
        )
        yield GaugeMetricFamily(
            "memoryhub_leases_active",
            "Unexpired, unreleased leases",
            value=Lease.objects.filter(released_at=None, expires_at__gt=now).count(),
        )
        tasks = GaugeMetricFamily("memoryhub_tasks", "Tasks by status", labels=["status"])
        for status, n in tasks_by_status().items():
            tasks.add_metric([status], n)
        yield tasks
        yield GaugeMetricFamily(
            "memoryhub_inbox_unread",
            "Unread receipts across all inboxes",
            value=Receipt.objects.filter(read_at=None, entry_expired=False).count(),
        )
        totals = LockResource.objects.aggregate(
            acquired=Sum("acquired_count"),
            denied=Sum("denied_count"),
            waited=Sum("waited_count"),
            expired=Sum("expired_count"),
        )
        contention = GaugeMetricFamily(
            "memoryhub_lock_contention", "Lock outcomes since start, all resources", labels=["outcome"]
        )
        for outcome, value in totals.items():
            contention.add_metric([outcome], value or 0)
        yield contention
        from memoryhub.search.services import embedding_backlog

        yield GaugeMetricFamily(
            "memoryhub_search_embedding_backlog",
            "Memory versions not embedded yet (semantic search may miss them)",
            value=embedding_backlog(),
        )


registry = CollectorRegistry()
registry.register(HubCollector())

# --- this process's counters ----------------------------------------------------------------------
process_registry = CollectorRegistry()
request_duration = Histogram(
    "memoryhub_request_duration_seconds",
    "HTTP requests by route (the URL pattern), method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=process_registry,
)
websocket_connections = Gauge(
    "memoryhub_websocket_connections",
    "Websockets connected to the event stream",
    multiprocess_mode="livesum",
    registry=process_registry,
)
websocket_subscribe_failures = Counter(
    "memoryhub_websocket_subscribe_failures",
    "Failed attempts of a websocket to join the channel layer (Redis down); it is served from the log meanwhile",
    registry=process_registry,
)
catch_up_reads = Counter(
    "memoryhub_websocket_catch_up_reads",
    "Reads of the event log by websockets (replay, gap fills, idle re-reads)",
    registry=process_registry,
)
publish_failures = Counter(
    "memoryhub_publish_failures",
    "Events whose publish to the channel layer failed (sockets read them from the log)",
    registry=process_registry,
)
idempotency_replays = Counter(
    "memoryhub_idempotency_replays",
    "Writes answered with the stored response of an earlier request with the same Idempotency-Key",
    registry=process_registry,
)


def _process_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)
    return generate_latest(process_registry)


def metrics(request):
    return HttpResponse(generate_latest(registry) + _process_metrics(), content_type=CONTENT_TYPE_LATEST)
