"""/healthz (the process answers) and /readyz (database, channel layer and broker reachable).

Each readiness check runs in its own thread with a deadline of CHECK_TIMEOUT_SECONDS, all at once, so
the probe answers within that bound whatever hangs (a paused Redis accepts connections and never
replies; with redis-py's defaults a check would wait for as long as the pause). A check still stuck
from an earlier probe is waited on again rather than started twice, so a long outage does not pile
up threads. A failed dependency is a 503 that names it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

CHECK_TIMEOUT_SECONDS = 2.0

_executor = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")
_running: dict[str, Future] = {}
_running_lock = threading.Lock()


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this thread's connection (or its pool slot) is not kept between probes
    return "ok"


def _ping(url: str) -> None:
    import redis

    client = redis.Redis.from_url(
        url, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()


def _check_channel_layer() -> str:
    config: dict[str, Any] = settings.CHANNEL_LAYERS.get("default", {})
    if str(config.get("BACKEND", "")).endswith("InMemoryChannelLayer"):
        return "ok (in-process)"
    for host in config.get("CONFIG", {}).get("hosts", []):
        _ping(host["address"] if isinstance(host, dict) else host)
    return "ok"


def _check_broker() -> str:
    if settings.CELERY_BROKER_URL.startswith("memory://"):
        return "ok (in-process)"
    _ping(settings.CELERY_BROKER_URL)
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "channel_layer": _check_channel_layer,
    "broker": _check_broker,
}


def _start(name: str, check: Callable[[], str]) -> Future:
    with _running_lock:
        future = _running.get(name)
        if future is None or future.done():
            future = _running[name] = _executor.submit(check)
        return future


def _embedding_backlog() -> str:
    from memoryhub.search.embedders import Unavailable, current_embedder
    from memoryhub.search.services import embedding_backlog

    try:
        backlog = embedding_backlog()
    finally:
        connection.close()  # as _check_database: nothing kept by this probe thread
    try:
        name = current_embedder().name
    except Unavailable as exc:
        return f"unavailable ({exc}); backlog {backlog}"
    return f"ok ({name}); backlog {backlog}"


# Reported, never a reason to take the server out of rotation: lexical search and every other
# endpoint work while embeddings catch up.
REPORTS: dict[str, Callable[[], str]] = {"embeddings": _embedding_backlog}


def readyz(request):
    futures = {name: _start(name, check) for name, check in (CHECKS | REPORTS).items()}
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    checks: dict[str, str] = {}
    failed: list[str] = []
    for name, future in futures.items():
        try:
            checks[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            checks[name] = f"error: no answer within {CHECK_TIMEOUT_SECONDS:g} s"
            if name in CHECKS:
                failed.append(name)
        except Exception as exc:  # a readiness probe reports, it does not crash
            checks[name] = f"error: {exc.__class__.__name__}: {exc}"
            if name in CHECKS:
                failed.append(name)
    if failed:
        return JsonResponse({"status": "not ready", "failed": failed, "checks": checks}, status=503)
    return JsonResponse({"status": "ready", "checks": checks})
