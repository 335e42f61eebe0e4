"""Rate limits (issue 12): per caller, metered so a burst cannot spend a minute's allowance at once,
decided before authentication (a refusal costs no query), failed authentications throttled per client
address, shared across server processes in Redis, per process without it."""

import os
import uuid

import httpx
import pytest
import redis
from rest_framework.test import APIClient

from memoryhub.api import ratelimit
from memoryhub.api.ratelimit import LocalBuckets, Rate, parse_rate
from tests.servers import server

from .test_errors import assert_error

pytestmark = pytest.mark.django_db
ME = "/api/v1/me/"


@pytest.fixture
def limits(settings, monkeypatch):
    """Fresh counters (in Redis when the suite has one, as in production), limits off until a test
    sets them."""
    monkeypatch.setattr(ratelimit, "store", ratelimit._Store())
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = client.keys("memoryhub:rl:*")
        if keys:
            client.delete(*keys)
    return settings


@pytest.fixture
def sales(policies, make_agent):
    return make_agent("sales-1", "sales")


@pytest.fixture
def support(policies, make_agent):
    return make_agent("support-1", "support")


def client_with(token: str, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_caller_over_its_rate_gets_429_with_retry_after(limits, sales, support):
    limits.MEMORYHUB_RATE_LIMIT = "3/min"
    assert [sales.client.get(ME).status_code for _ in range(3)] == [200, 200, 200]
    response = sales.client.get(ME)
    error = assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1 and error["details"]["retry_after_seconds"] > 0
    assert support.client.get(ME).status_code == 200  # another agent has its own allowance


def test_a_burst_cannot_spend_the_whole_minute_at_once(limits, sales):
    """6,000/min is 100/s: with a fixed window a flooder could send all 6,000 in its first second."""
    limits.MEMORYHUB_RATE_LIMIT = "60/min"  # one a second, bursts of 10
    statuses = [sales.client.get(ME).status_code for _ in range(30)]
    assert statuses[:10] == [200] * 10
    assert statuses[10:].count(200) <= 1  # one more if a second passed meanwhile


def test_a_refusal_is_decided_before_authentication_and_the_body(limits, sales, django_assert_num_queries):
    limits.MEMORYHUB_RATE_LIMIT = "1/min"
    assert sales.client.get(ME).status_code == 200
    with django_assert_num_queries(0):  # no token lookup, no transaction, no policies
        response = sales.client.put(
            "/api/v1/memories/customer:a/k/",
            "{not json",
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
    assert_error(response, 429, "throttled")  # not 400: the body was never parsed


def test_once_refused_a_caller_is_refused_in_the_process_until_its_wait_is_over(limits, sales, monkeypatch):
    """A refusal consumes nothing, so nothing can be let in before the wait it announced: a flood's
    next refusals are answered without asking the counters (in production: without a Redis trip)."""
    limits.MEMORYHUB_RATE_LIMIT = "1/min"
    assert [sales.client.get(ME).status_code for _ in range(2)] == [200, 429]
    asked = []
    original = ratelimit.store.call
    monkeypatch.setattr(ratelimit.store, "call", lambda method, **kw: asked.append(method) or original(method, **kw))
    assert [sales.client.get(ME).status_code for _ in range(5)] == [429] * 5
    assert asked == []


def test_humans_are_limited_per_session_and_anonymous_callers_per_address(limits, human):
    limits.MEMORYHUB_RATE_LIMIT = "2/min"
    assert [human.get(ME).status_code for _ in range(3)] == [200, 200, 429]
    anonymous = APIClient(REMOTE_ADDR="10.0.0.7")
    assert [anonymous.get(ME).status_code for _ in range(3)] == [401, 401, 429]


def test_failed_authentications_are_throttled_per_address(limits, sales):
    limits.MEMORYHUB_AUTH_FAILURE_LIMIT = "5/min"
    assert sales.client.get(ME).status_code == 200  # this token is now known good
    # Every request with a new random token costs a lookup: five are let through, then none.
    statuses = [client_with(f"mh_guess{n}").get(ME).status_code for n in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    refused = client_with("mh_guess-more").get(ME)
    assert "failed authentications" in assert_error(refused, 429, "throttled")["message"]
    # The agent that authenticated before is not shut out by its neighbour; another address neither.
    assert sales.client.get(ME).status_code == 200
    assert client_with("mh_elsewhere", address="10.0.0.9").get(ME).status_code == 401


def test_a_refused_bad_token_costs_no_query(limits, django_assert_num_queries):
    limits.MEMORYHUB_AUTH_FAILURE_LIMIT = "1/min"
    assert client_with("mh_bad").get(ME).status_code == 401
    with django_assert_num_queries(0):
        assert client_with("mh_bad").get(ME).status_code == 429


def test_the_client_address_comes_from_x_forwarded_for_behind_proxies(limits, settings):
    limits.MEMORYHUB_AUTH_FAILURE_LIMIT = "1/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "192.0.2.1"

    def via_proxy(client_address: str) -> int:
        client = APIClient(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=client_address)
        client.credentials(HTTP_AUTHORIZATION="Bearer mh_bad")
        return client.get(ME).status_code

    assert [via_proxy("203.0.113.1"), via_proxy("203.0.113.1"), via_proxy("203.0.113.2")] == [401, 429, 401]


def test_when_redis_does_not_answer_the_process_counts_and_nothing_fails(limits, sales):
    limits.MEMORYHUB_RATE_LIMIT = "2/min"
    limits.MEMORYHUB_RATE_LIMIT_SHARED = True
    limits.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    assert [sales.client.get(ME).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_limits_are_shared_by_server_processes_through_redis(policies, make_agent):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL not set: several server processes share limits through Redis")
    agent = make_agent("sales-1", "sales")
    client = redis.Redis.from_url(url)
    if keys := client.keys("memoryhub:rl:*"):
        client.delete(*keys)
    env = {"REDIS_URL": url, "MEMORYHUB_RATE_LIMIT": "4/min", "MEMORYHUB_INPROCESS_SWEEPER": "false"}
    with server(kind="gunicorn", env=env) as first, server(kind="gunicorn", env=env) as second:
        headers = {"Authorization": f"Bearer {agent.token}"}
        # New connections each time: gunicorn's two sync workers per server take turns at accepting.
        statuses = [httpx.get(f"{base}{ME}", headers=headers).status_code for base in [first, second] * 5]
    assert statuses.count(200) == 4 and statuses.count(429) == 6


# --- the buckets themselves, with time controlled ---------------------------------------------------


class Clock:
    def __init__(self, monkeypatch) -> None:
        self.now = 1_000_000.0
        monkeypatch.setattr(ratelimit.time, "time", lambda: self.now)


def test_after_a_burst_one_request_per_interval(monkeypatch):
    clock, buckets = Clock(monkeypatch), LocalBuckets()
    rate = Rate(limit=60, period=60, burst=3)

    def admitted() -> bool:
        return buckets.admit(caller="c", rate=rate, address="a", failures=None, digest="")[0] == 0

    assert [admitted() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.9
    assert not admitted()
    clock.now += 0.1
    assert [admitted(), admitted()] == [True, False]


def test_counters_are_not_forgotten_when_there_are_many_callers(monkeypatch):
    """The old counters lived in a LocMemCache that culled at 300 entries: a caller's count could
    vanish while it was over its limit."""
    Clock(monkeypatch)
    buckets, rate = LocalBuckets(), Rate(limit=1, period=60, burst=1)
    for index in range(1000):
        assert buckets.admit(caller=f"c{index}", rate=rate, address="a", failures=None, digest="")[0] == 0
    assert all(buckets.admit(caller=f"c{i}", rate=rate, address="a", failures=None, digest="")[0] for i in range(1000))


def test_idle_buckets_are_dropped(monkeypatch):
    clock, buckets = Clock(monkeypatch), LocalBuckets()
    rate = Rate(limit=10, period=1, burst=10)
    for index in range(500):
        buckets.admit(caller=f"c{index}", rate=rate, address="a", failures=None, digest="")
    clock.now += 2
    buckets.admit(caller="late", rate=rate, address="a", failures=None, digest="")
    assert list(buckets._tat) == ["late"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("6000/min", Rate(6000, 60, 100)),
        ("3/min", Rate(3, 60, 3)),
        ("100/s", Rate(100, 1, 100)),
        ("60/hour", Rate(60, 3600, 10)),
        ("off", None),
    ],
)
def test_rates_and_their_default_bursts(raw, expected):
    assert parse_rate(raw) == expected
