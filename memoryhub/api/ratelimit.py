"""Rate limits for the API, decided before anything else a request costs.

A flooding agent must not slow the others down, so a refusal has to cost next to nothing: this
middleware runs first, keys the caller by what the request carries (the token's digest, the session
cookie, else the client address) without a database query, and answers 429 before authentication,
the idempotency claim, body parsing and policy loading. (A DRF throttle runs after
authentication: its refusals cost a token lookup, and a write's also an open transaction.)

- Each caller gets MEMORYHUB_RATE_LIMIT (`6000/min`), metered by GCRA: up to a burst of requests at
  once (MEMORYHUB_RATE_LIMIT_BURST: one second's worth, at least 10, at most the limit), then one per
  interval. A fixed window would let a flooder spend a minute's allowance in its first second.
- Failed authentications (401) count per client address (MEMORYHUB_AUTH_FAILURE_LIMIT, `30/min`):
  past it, the address's requests are refused before their token is looked up, except those whose
  token this hub has recently accepted, so an agent with a revoked token does not shut out the
  other agents on its host.
- With Redis (REDIS_URL) the counters are shared by every server process, one round trip (a Lua
  script) per request; without, or while Redis does not answer, each process counts for itself.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.throttling import BaseThrottle

from .errors import error_body

log = logging.getLogger(__name__)

PREFIX = "/api/v1/"
PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
VOUCH_SECONDS = 3600  # a token accepted this recently passes an address over its failure limit
REVOUCH_SECONDS = 300  # how often a process renews that mark for a token it keeps seeing
REDIS_RETRY_SECONDS = 5  # after a Redis error, count in the process this long before trying again


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    period: float
    burst: int

    @property
    def interval(self) -> float:
        return self.period / self.limit


@lru_cache(maxsize=16)
def parse_rate(raw: str, burst: int | None = None) -> Rate | None:
    """'6000/min' -> 6000 per 60 s with its burst; 'off' or '' -> None."""
    if not raw or raw == "off":
        return None
    count, _, unit = raw.partition("/")
    limit, period = int(count), PERIODS[unit]
    if burst is None:
        burst = min(limit, max(10, math.ceil(limit / period)))
    return Rate(limit, period, max(1, burst))


# Why a request was refused.
ADMITTED, TOO_MANY, FAILING_ADDRESS = 0, 1, 2
MESSAGES = {
    TOO_MANY: "Too many requests.",
    FAILING_ADDRESS: "Too many failed authentications from this address.",
}


class Buckets(Protocol):
    def admit(
        self, *, caller: str, rate: Rate | None, address: str, failures: Rate | None, digest: str
    ) -> tuple[int, float]:
        """(ADMITTED, 0) to let the request in, else why not and the seconds to wait."""

    def failed(self, *, address: str, failures: Rate) -> None: ...

    def vouch(self, *, digest: str) -> None: ...


# --- GCRA: a bucket is its "theoretical arrival time" (TAT); a request is let in unless that would
# put the TAT more than `burst` intervals ahead of now. --------------------------------------------


def _wait(tat: float, now: float, rate: Rate) -> float:
    """Seconds until one more request fits in a bucket at `tat` (<= 0: it fits now)."""
    return max(tat, now) + rate.interval - rate.burst * rate.interval - now


class LocalBuckets:
    """The counters of one server process."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._vouched: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def admit(
        self, *, caller: str, rate: Rate | None, address: str, failures: Rate | None, digest: str
    ) -> tuple[int, float]:
        now = time.time()
        with self._lock:
            self._prune(now)
            failing = failures is not None and (wait := _wait(self._tat.get("f:" + address, 0.0), now, failures)) > 0
            if failing and not (digest and self._vouched.get(digest, 0.0) > now):
                return FAILING_ADDRESS, wait
            if rate is None:
                return ADMITTED, 0.0
            tat = self._tat.get(caller, 0.0)
            if (wait := _wait(tat, now, rate)) > 0:
                return TOO_MANY, wait
            self._tat[caller] = max(tat, now) + rate.interval
            return ADMITTED, 0.0

    def failed(self, *, address: str, failures: Rate) -> None:
        now = time.time()
        key = "f:" + address
        with self._lock:
            # Capped at a full burst ahead: an address that keeps failing stays refused, no longer.
            tat = max(self._tat.get(key, 0.0), now) + failures.interval
            self._tat[key] = min(tat, now + failures.burst * failures.interval)

    def vouch(self, *, digest: str) -> None:
        with self._lock:
            self._vouched[digest] = time.time() + VOUCH_SECONDS

    def _prune(self, now: float) -> None:
        # A bucket whose TAT has passed is as good as absent: drop those once a second, so the
        # dict holds only the callers of the last moments (random tokens cannot grow it for long).
        if now < self._next_prune:
            return
        self._next_prune = now + 1.0
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
        self._vouched = {digest: until for digest, until in self._vouched.items() if until > now}


# KEYS: the caller's bucket, the address's failure bucket, the token's vouch mark.
# ARGV: interval (us, 0 = no limit), burst, failure interval (us, 0 = none), failure burst, has_token.
# Times come from Redis, so server processes on different hosts share one clock.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local f_interval, f_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
if f_interval > 0 then
  local f_tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  local wait = math.max(f_tat, now) + f_interval - f_burst * f_interval - now
  if wait > 0 and not (ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1) then
    return {2, wait}
  end
end
if interval == 0 then
  return {0, 0}
end
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = tat + interval - burst * interval - now
if wait > 0 then
  return {1, wait}
end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', string.format('%.0f', (tat + interval - now) / 1000 + 1))
return {0, 0}
"""
# KEYS: the address's failure bucket. ARGV: failure interval (us), failure burst.
_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = math.min(math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + interval, now + burst * interval)
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%.0f', (tat - now) / 1000 + 1))
return 0
"""


class RedisBuckets:
    """The counters in Redis, shared by every server process: one script call per request."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._admit = self.client.register_script(_ADMIT)
        self._failed = self.client.register_script(_FAILED)

    def admit(
        self, *, caller: str, rate: Rate | None, address: str, failures: Rate | None, digest: str
    ) -> tuple[int, float]:
        verdict, wait_us = self._admit(
            keys=[f"memoryhub:rl:c:{caller}", f"memoryhub:rl:f:{address}", f"memoryhub:rl:g:{digest}"],
            args=[
                _micros(rate.interval) if rate else 0,
                rate.burst if rate else 0,
                _micros(failures.interval) if failures else 0,
                failures.burst if failures else 0,
                1 if digest else 0,
            ],
        )
        return int(verdict), int(wait_us) / 1_000_000

    def failed(self, *, address: str, failures: Rate) -> None:
        self._failed(keys=[f"memoryhub:rl:f:{address}"], args=[_micros(failures.interval), failures.burst])

    def vouch(self, *, digest: str) -> None:
        self.client.set(f"memoryhub:rl:g:{digest}", 1, ex=VOUCH_SECONDS)


def _micros(seconds: float) -> int:
    return max(1, round(seconds * 1_000_000))


class _Store:
    """The buckets in use: Redis when configured and answering, else this process's."""

    def __init__(self) -> None:
        self.local = LocalBuckets()
        self._redis: RedisBuckets | None = None
        self._redis_url = ""
        self._redis_down_until = 0.0
        self._lock = threading.Lock()

    def buckets(self) -> Buckets:
        url = settings.REDIS_URL if settings.MEMORYHUB_RATE_LIMIT_SHARED else ""
        if not url or time.monotonic() < self._redis_down_until:
            return self.local
        with self._lock:
            if self._redis is None or self._redis_url != url:
                self._redis, self._redis_url = RedisBuckets(url), url
            return self._redis

    def call(self, method: str, **kwargs):
        buckets = self.buckets()
        try:
            return getattr(buckets, method)(**kwargs)
        except Exception as error:  # Redis down or slow: limits go on in the process, never a 5xx
            if buckets is self.local:
                raise
            log.warning("rate limits counted per process for %ss: Redis failed (%s)", REDIS_RETRY_SECONDS, error)
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            return getattr(self.local, method)(**kwargs)


store = _Store()
_ident = BaseThrottle()  # DRF's client address: REMOTE_ADDR, or X-Forwarded-For past NUM_PROXIES


def _digest(secret: str) -> str:
    # The token's sha256, as agents.models stores it (memoryhub/api imports no domain app).
    return hashlib.sha256(secret.encode()).hexdigest()


def _throttled(wait: float, message: str) -> HttpResponse:
    response = JsonResponse(error_body("throttled", message, {"retry_after_seconds": round(wait, 3)}), status=429)
    response["Retry-After"] = str(math.ceil(wait))
    return response


class RateLimitMiddleware:
    """Per-caller request rates and per-address failed authentications for /api/v1/, before Django
    and DRF spend anything on the request."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._vouched: dict[str, float] = {}  # digest -> when this process last renewed its mark
        # caller -> until when it is refused: a refused request consumes nothing, so no request of
        # that caller can be let in before then, and a flood's refusals need not ask Redis each time.
        self._blocked: dict[str, float] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        rate = parse_rate(settings.MEMORYHUB_RATE_LIMIT, settings.MEMORYHUB_RATE_LIMIT_BURST)
        failures = parse_rate(settings.MEMORYHUB_AUTH_FAILURE_LIMIT, None)
        if rate is None and failures is None:
            return self.get_response(request)
        address = _ident.get_ident(request) or "unknown"  # type: ignore[arg-type]  # reads only META
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        digest = _digest(token) if scheme.lower() == "bearer" and token else ""
        session = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
        caller = f"t:{digest}" if digest else f"s:{_digest(session)}" if session else f"a:{address}"
        now = time.monotonic()
        if (until := self._blocked.get(caller, 0.0)) > now:
            return _throttled(until - now, MESSAGES[TOO_MANY])
        verdict, wait = store.call("admit", caller=caller, rate=rate, address=address, failures=failures, digest=digest)
        if verdict != ADMITTED:
            if verdict == TOO_MANY:
                self._block(caller, now + wait)
            return _throttled(wait, MESSAGES[verdict])
        response = self.get_response(request)
        if response.status_code == 401:
            if failures is not None:
                store.call("failed", address=address, failures=failures)
        elif digest and time.monotonic() - self._vouched.get(digest, -math.inf) > REVOUCH_SECONDS:
            self._vouched[digest] = time.monotonic()
            store.call("vouch", digest=digest)
        return response

    def _block(self, caller: str, until: float) -> None:
        if len(self._blocked) > 10_000:  # many callers refused at once: keep only those still blocked
            now = time.monotonic()
            self._blocked = {key: end for key, end in self._blocked.items() if end > now}
        self._blocked[caller] = until
