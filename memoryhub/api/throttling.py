from __future__ import annotations

import threading
import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

from memoryhub.context import Caller

PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}

_redis = None
_redis_lock = threading.Lock()


def parse_rate(rate: str) -> tuple[int, int] | None:
    """'600/min' -> (600, 60); 'off' or '' -> None."""
    if not rate or rate == "off":
        return None
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period]


def _redis_client():
    global _redis
    with _redis_lock:
        if _redis is None:
            import redis

            _redis = redis.Redis.from_url(settings.REDIS_URL)
        return _redis


def _count(key: str, period: int) -> int:
    """Requests counted in this window, this one included: per server process by default (no round
    trip; N processes let a caller through up to N times the rate), or across all processes in Redis
    with MEMORYHUB_RATE_LIMIT_SHARED (one round trip per request)."""
    if settings.MEMORYHUB_RATE_LIMIT_SHARED and settings.REDIS_URL:
        pipe = _redis_client().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, period * 2, nx=True)  # the window's expiry starts with its first request
        return pipe.execute()[0]
    local = caches["throttle"]
    local.add(key, 0, timeout=period * 2)
    try:
        return local.incr(key)
    except ValueError:  # evicted between add and incr
        local.set(key, 1, timeout=period * 2)
        return 1


class CallerRateThrottle(BaseThrottle):
    """At most N requests per caller (agent or staff user) per fixed window (MEMORYHUB_RATE_LIMIT),
    for one counter increment per request whatever the rate (DRF's SimpleRateThrottle keeps every
    timestamp of the window)."""

    def allow_request(self, request, view):
        rate = parse_rate(settings.MEMORYHUB_RATE_LIMIT)
        if rate is None:
            return True
        limit, period = rate
        caller = request.auth
        ident = (
            f"agent:{caller.id}"
            if isinstance(caller, Caller) and caller.is_agent
            else f"user:{getattr(request.user, 'pk', None) or self.get_ident(request)}"
        )
        now = time.time()
        window = int(now // period)
        count = _count(f"memoryhub:throttle:{ident}:{window}", period)
        self._wait = (window + 1) * period - now
        return count <= limit

    def wait(self):
        return getattr(self, "_wait", None)
