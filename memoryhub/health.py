"""/healthz (the process answers) and /readyz (database, channel layer and broker reachable)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_channel_layer() -> str:
    layer = get_channel_layer()
    async_to_sync(layer.send)("memoryhub.readyz", {"type": "readyz"})
    return "ok"


def _check_broker() -> str:
    if settings.CELERY_BROKER_URL.startswith("memory://"):
        return "ok (in-process)"
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2).ping()
    return "ok"


def _embedding_backlog() -> str:
    from memoryhub.search.embedders import Unavailable, current_embedder
    from memoryhub.search.services import embedding_backlog

    backlog = embedding_backlog()
    try:
        name = current_embedder().name
    except Unavailable as exc:
        return f"unavailable ({exc}); backlog {backlog}"
    return f"ok ({name}); backlog {backlog}"


def readyz(request):
    checks: dict[str, str] = {}
    ready = True
    for name, check in (
        ("database", _check_database),
        ("channel_layer", _check_channel_layer),
        ("broker", _check_broker),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # a readiness probe reports, it does not crash
            checks[name] = f"error: {exc.__class__.__name__}: {exc}"
            ready = False
    try:
        # Reported, never a reason to take the server out of rotation: lexical search and every
        # other endpoint work while embeddings catch up.
        checks["embeddings"] = _embedding_backlog()
    except Exception as exc:
        checks["embeddings"] = f"error: {exc.__class__.__name__}: {exc}"
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
