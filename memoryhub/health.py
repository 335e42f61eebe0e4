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
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
