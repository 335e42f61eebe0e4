"""The benchmark harness: the bench database, the server layouts under test, a load generator that
runs in its own processes, and the report.

Nothing here imports Django at module level: the load generator's worker processes (multiprocessing
"spawn") import this module and must stay light. Django is set up only in the parent process, by
`configure_django()`, against the bench database.
"""

from __future__ import annotations

import http.client
import importlib
import json
import math
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.servers import free_port, stop

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "bench-results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/memoryhub_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
# Requests slower than this are listed (when, which, how slow) in the results, to tell a host-wide
# stall (every agent at the same moment) from a slow path.
SLOW_SECONDS = 1.0
# The REST layout the single-layout suites run on (the memories suite compares layouts to choose it).
PRODUCTION_LAYOUT = "gunicorn-sync"
# High enough never to refuse a benchmark request, so the throttle's cost is paid but nothing is 429ed.
BENCH_RATE_LIMIT = "100000000/min"


# --- configuration ----------------------------------------------------------------------------------


@dataclass
class BenchConfig:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    duration: float = 10.0  # measured seconds per case
    warmup: float = 3.0  # seconds of load before measuring
    processes: int = 2  # load-generator processes
    rounds: int = 1  # each case is run this many times, interleaved; the median is reported
    layouts: list[str] | None = None  # REST layouts; None: the memories suite compares the three below
    compared_layouts: tuple[str, ...] = ("gunicorn-sync", "gunicorn-gthread", "daphne")
    rate_limit: str = BENCH_RATE_LIMIT
    quick: bool = False  # smaller data sets (e.g. 100,000 instead of 1,000,000 inbox rows)
    flush_redis: bool = True  # tools that run beside a benchmark (profile, census) leave Redis alone
    warm_token: str = ""  # an agent's token for warming servers up (set by reset_database)

    @property
    def rest_layout(self) -> str:
        """The layout of the suites that run on one layout: the first one asked for, else production's."""
        return self.layouts[0] if self.layouts else PRODUCTION_LAYOUT

    @property
    def layouts_to_compare(self) -> list[str]:
        return list(self.layouts or self.compared_layouts)

    @property
    def database_name(self) -> str:
        return urlsplit(self.database_url).path.lstrip("/")


def config_from_env(*, database_suffix: str = "", **overrides: Any) -> BenchConfig:
    config = BenchConfig(
        database_url=os.environ.get("MEMORYHUB_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        redis_url=os.environ.get("MEMORYHUB_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
    )
    for name, value in overrides.items():
        if value is not None:
            setattr(config, name, value)
    if database_suffix:
        # A database of its own, so a benchmark running meanwhile keeps its data.
        config.database_url = (
            urlsplit(config.database_url)._replace(path=f"/{config.database_name}{database_suffix}").geturl()
        )
    if "bench" not in config.database_name:
        # The harness drops and recreates this database: refuse anything that is not clearly ours.
        raise SystemExit(f"refusing to use database {config.database_name!r}: its name must contain 'bench'")
    return config


def server_environment(config: BenchConfig) -> dict[str, str]:
    """The environment of every process that runs memoryhub code: bench database, Redis db, floors."""
    return {
        "DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "DJANGO_SETTINGS_MODULE": "memoryhub.settings",
        "MEMORYHUB_URLCONF": "tests.bench.urls",
        "MEMORYHUB_RATE_LIMIT": config.rate_limit,
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "ERROR",
        "PYTHONUNBUFFERED": "1",
        # This host sets PYTHONDONTWRITEBYTECODE=1: every server process would compile each module it
        # imports from source, lazily imported ones (redis, channels_redis) in its first requests,
        # stalling them for seconds. Bytecode goes to a private cache instead (the venv stays as is).
        "PYTHONPYCACHEPREFIX": str(RESULTS_DIR / "pycache"),
    }


def configure_django(config: BenchConfig) -> None:
    """Set up Django in this (the parent) process against the bench database."""
    os.environ.update(server_environment(config))
    import django

    django.setup()


# --- the bench database -----------------------------------------------------------------------------


def _admin_dsn(config: BenchConfig) -> str:
    parts = urlsplit(config.database_url)
    return parts._replace(path="/postgres").geturl()


def reset_database(config: BenchConfig) -> None:
    """Drop and recreate the bench database, migrate it, create the floor tables, empty our Redis db."""
    import psycopg
    import redis
    from django.core.management import call_command
    from django.db import connections

    from . import floor

    connections.close_all()
    for connection in connections.all():
        if hasattr(connection, "close_pool"):  # pooled connections would outlive the dropped database
            connection.close_pool()
    name = config.database_name
    with psycopg.connect(_admin_dsn(config), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0, interactive=False)
    floor.create_tables()
    config.warm_token = create_agents("bench-warmup", 1, "bench-warmup")[0]["token"]
    if config.flush_redis:
        redis.Redis.from_url(config.redis_url).flushdb()


def apply_policies(document: dict[str, Any]) -> None:
    from memoryhub.actors import SYSTEM
    from policies.services import policies_apply

    policies_apply(actor=SYSTEM, document=document, reason="benchmark setup")


def create_agents(prefix: str, count: int, role: str) -> list[dict[str, Any]]:
    """`count` agents created through the service, each with a token; the floor endpoints accept the
    same tokens (one row each in the floor's token table)."""
    from memoryhub.actors import SYSTEM
    from memoryhub.agents.services import agent_create

    from . import floor

    agents = []
    for index in range(count):
        agent, token = agent_create(actor=SYSTEM, agent_id=f"{prefix}-{index}", role=role)
        agents.append({"id": agent.id, "role": role, "token": token, "index": index})
    floor.register_tokens(agents)
    return agents


def db_count(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


# --- servers ------------------------------------------------------------------------------------------

# name -> (command line after `python -m`, description). Everything serves the same Django project.
LAYOUTS: dict[str, tuple[str, str]] = {
    "gunicorn-sync": (
        "gunicorn memoryhub.wsgi:application -k sync -w 4 --backlog 2048",
        "gunicorn WSGI, 4 sync workers",
    ),
    "gunicorn-sync2": (
        "gunicorn memoryhub.wsgi:application -k sync -w 2 --backlog 2048",
        "gunicorn WSGI, 2 sync workers (issue 16's layout)",
    ),
    "gunicorn-gthread": (
        "gunicorn memoryhub.wsgi:application -k gthread -w 4 --threads 4 --keep-alive 75 --backlog 2048",
        "gunicorn WSGI, 4 workers x 4 threads (gthread)",
    ),
    "gunicorn-gthread2": (
        "gunicorn memoryhub.wsgi:application -k gthread -w 2 --threads 8 --keep-alive 75 --backlog 2048",
        "gunicorn WSGI, 2 workers x 8 threads (gthread)",
    ),
    "daphne": ("daphne memoryhub.asgi:application", "daphne ASGI, 1 process"),
    # What `make run` starts (issue 17): one process, uvicorn in front, REST through the WSGI handler in
    # a thread pool, websockets and sweepers on the same loop; and the same behind daphne instead.
    "embedded": ("memoryhub.embedded", "embedded server (uvicorn), 1 process"),
    "embedded-daphne": ("memoryhub.embedded --server daphne", "embedded server behind daphne, 1 process"),
    # The hub's ASGI app plus the websocket floor (tests/bench/asgi.py), for the stream benchmark.
    "daphne-ws": ("daphne tests.bench.asgi:application", "daphne ASGI, hub + websocket floor"),
    "uvicorn": (
        "uvicorn memoryhub.asgi:application --workers 2 --no-access-log --log-level warning",
        "uvicorn ASGI, 2 processes",
    ),
}

# Under ASGI every request runs its sync code in a thread of its own, so persistent connections
# (CONN_MAX_AGE > 0) pile up, one per finished request thread, until PostgreSQL refuses clients
# ("too many clients already", seen here): ASGI layouts serving REST run with CONN_MAX_AGE=0, as
# Django's deployment notes advise.
LAYOUT_ENV: dict[str, dict[str, str]] = {
    "daphne": {"DATABASE_CONN_MAX_AGE": "0"},
    "uvicorn": {"DATABASE_CONN_MAX_AGE": "0"},
}


def _bind_args(layout: str, port: int) -> list[str]:
    if layout.startswith("gunicorn"):
        return ["-b", f"127.0.0.1:{port}"]
    if layout == "uvicorn" or layout.startswith("embedded"):
        return ["--host", "127.0.0.1", "--port", str(port)]
    return ["-b", "127.0.0.1", "-p", str(port)]


def _wait_healthy(base: str, process: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    parts = urlsplit(base)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}); see {log_path}:\n{log_path.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on {base} not healthy after {timeout}s; see {log_path}")
        time.sleep(0.2)


def _warm_up(base: str, token: str, requests: int = 96, connections: int = 16) -> None:
    """Authenticated requests (token lookup, throttle, a view, the floor) on several connections, so
    each worker has done its first-request imports and opened its connections before anything is
    measured."""
    parts = urlsplit(base)
    paths = ["/api/v1/me/", "/api/v1/events/?limit=1", "/api/bench/floor/read/"]

    def hit(count: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        for number in range(count):
            try:
                conn.request("GET", paths[number % len(paths)], headers={"Authorization": f"Bearer {token or 'none'}"})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
        conn.close()

    threads = [threading.Thread(target=hit, args=(requests // connections,)) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@contextmanager
def server(
    layout: str, config: BenchConfig, *, extra_env: dict[str, str] | None = None, tree: Path = ROOT
) -> Iterator[str]:
    """Start one server layout on a free port; yield its base URL; stop it (by its own pid). `tree` is
    the source tree it runs (another checkout, to compare two versions of the code in one run)."""
    with server_process(layout, config, extra_env=extra_env, tree=tree) as (base, _process):
        yield base


@contextmanager
def server_process(
    layout: str, config: BenchConfig, *, extra_env: dict[str, str] | None = None, tree: Path = ROOT
) -> Iterator[tuple[str, subprocess.Popen]]:
    """The same, yielding the process too (the profiler attaches to it)."""
    command, _ = LAYOUTS[layout]
    port = free_port()
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{layout}-{port}.log"
    env = {**os.environ, **server_environment(config), **LAYOUT_ENV.get(layout, {}), **(extra_env or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *command.split(), *_bind_args(layout, port)],
            cwd=tree,  # `python -m` puts the working directory first on sys.path: this tree's code runs
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process, log_path)
        _warm_up(base, config.warm_token)
        yield base, process
    finally:
        stop(process, timeout=15)


@contextmanager
def servers(layouts: Sequence[str], config: BenchConfig, **kwargs: Any) -> Iterator[list[str]]:
    """Several server processes at once (e.g. two daphnes on one Redis); yields their base URLs."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield [stack.enter_context(server(layout, config, **kwargs)) for layout in layouts]


# --- the load generator -------------------------------------------------------------------------------


class RequestFailed(Exception):
    """An unexpected status or a transport error; already recorded as an error."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Session:
    """One simulated agent: one thread, one persistent HTTP/1.1 connection, its own state.

    Scenario functions call `request()` (HTTP) or `timed()` (anything else, e.g. raw SQL); latencies
    and errors count only inside the measurement window."""

    def __init__(self, agent: dict[str, Any], params: dict[str, Any], hosts: list[str]) -> None:
        self.agent = agent
        self.params = params
        self.state: dict[str, Any] = {}
        self.index = agent.get("index", 0)
        base = hosts[self.index % len(hosts)]
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.auth = {"Authorization": f"Bearer {agent['token']}"} if agent.get("token") else {}
        self.conn: http.client.HTTPConnection | None = None
        self.window = (math.inf, math.inf)
        self.latencies: dict[str, list[float]] = {}
        self.errors: Counter[str] = Counter()
        self.warmup_errors: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.cycles = 0
        self.slow: list[tuple[float, str, int]] = []
        self._db = None

    # -- measurement --
    def in_window(self, at: float | None = None) -> bool:
        at = time.time() if at is None else at
        return self.window[0] <= at <= self.window[1]

    def record(self, op: str, seconds: float) -> None:
        if self.in_window():
            self.latencies.setdefault(op, []).append(seconds * 1000.0)
            if seconds >= SLOW_SECONDS and len(self.slow) < 20:
                # When it ended, relative to the window's start: stalls shared by all agents line up.
                self.slow.append((round(time.time() - self.window[0], 2), op, round(seconds * 1000.0)))

    def error(self, message: str) -> None:
        (self.errors if self.in_window() else self.warmup_errors)[message[:200]] += 1

    def count(self, name: str, amount: int = 1) -> None:
        if self.in_window():
            self.counters[name] += amount

    def timed(self, op: str, function: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            result = function()
        except Exception as exc:
            self.error(f"{op}: {type(exc).__name__}: {exc}")
            raise RequestFailed(op) from exc
        self.record(op, time.perf_counter() - started)
        return result

    # -- HTTP --
    def connect(self) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.conn.connect()

    def request(
        self,
        op: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        ok: Sequence[int] = (200,),
    ) -> Reply:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {**self.auth, **(headers or {})}
        if method != "GET" and self.params.get("keys", True):
            # As memoryhub.client sends every write (memoryhub/client/_base.py, Call): a fresh
            # Idempotency-Key per logical write. `keys=False` measures the same loop without.
            all_headers.setdefault("Idempotency-Key", str(uuid.uuid4()))
        if payload is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            started = time.perf_counter()
            try:
                self.conn.request(method, path, body=payload, headers=all_headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # A keep-alive connection the server closed while idle: reconnect once, as clients do.
                self.conn.close()
                self.count("reconnects")
                if attempt == 2:
                    self.error(f"{op}: {type(exc).__name__}")
                    time.sleep(0.01)
                    raise RequestFailed(op) from exc
                continue
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()
                self.error(f"{op}: {type(exc).__name__}: {exc}")
                time.sleep(0.01)
                raise RequestFailed(op) from exc
            elapsed = time.perf_counter() - started
            break
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if reply.status not in ok:
            self.error(f"{op}: HTTP {reply.status} {data[:120]!r}")
            raise RequestFailed(op)
        self.record(op, elapsed)
        return reply

    # -- raw database (floors without HTTP) --
    def db(self):
        if self._db is None:
            import psycopg

            self._db = psycopg.connect(self.params["database_url"], autocommit=True)
        return self._db

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self._db is not None:
            self._db.close()

    def run(self, scenario: Callable[[Session], int | None]) -> None:
        end = self.window[1]
        while time.time() < end:
            try:
                done = scenario(self)
            except RequestFailed:
                continue
            except Exception as exc:
                self.error(f"scenario: {type(exc).__name__}: {exc}")
                time.sleep(0.01)
                continue
            if self.in_window():
                self.cycles += 1 if done is None else done


def _load(path: str) -> Callable:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker(job: dict[str, Any], agents: list[dict[str, Any]], ready, go, start_at, results) -> None:
    """One load-generator process: a thread per agent, started together at the parent's signal."""
    try:
        scenario = _load(job["scenario"])
        init = _load(job["init"]) if job.get("init") else None
        sessions = [Session(agent, job["params"], job["hosts"]) for agent in agents]
        for session in sessions:
            if init is not None:
                init(session)
            elif session.port is not None and job.get("connect", True):
                session.connect()
        ready.put(os.getpid())
        go.wait()
        begin = start_at.value
        for session in sessions:
            session.window = (begin + job["warmup"], begin + job["warmup"] + job["duration"])
        while time.time() < begin:
            time.sleep(0.001)
        threads = [threading.Thread(target=session.run, args=(scenario,), daemon=True) for session in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for session in sessions:
            session.close()
        merged: dict[str, Any] = {
            "latencies": {},
            "errors": Counter(),
            "warmup_errors": Counter(),
            "counters": Counter(),
            "slow": sorted(item for session in sessions for item in session.slow),
        }
        merged["cycles"] = sum(s.cycles for s in sessions)
        for session in sessions:
            for op, values in session.latencies.items():
                merged["latencies"].setdefault(op, []).extend(values)
            merged["errors"].update(session.errors)
            merged["warmup_errors"].update(session.warmup_errors)
            merged["counters"].update(session.counters)
        results.put(merged)
    except BaseException:
        ready.put(-1)
        results.put({"crash": traceback.format_exc()})


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class OpStats:
    n: int
    rate: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: list[float], duration: float) -> OpStats:
        ordered = sorted(values)
        return cls(
            n=len(ordered),
            rate=len(ordered) / duration,
            p50=percentile(ordered, 0.50),
            p90=percentile(ordered, 0.90),
            p99=percentile(ordered, 0.99),
            max=ordered[-1] if ordered else float("nan"),
        )


@dataclass
class LoadResult:
    scenario: str
    agents: int
    duration: float
    cycles: int
    ops: dict[str, OpStats]
    errors: dict[str, int]
    warmup_errors: dict[str, int]
    counters: dict[str, int]
    slow: list[tuple[float, str, int]] = field(default_factory=list)  # (s into the window, op, ms)

    @property
    def cycle_rate(self) -> float:
        return self.cycles / self.duration

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def op(self, name: str) -> OpStats:
        return self.ops.get(name) or OpStats(0, 0.0, float("nan"), float("nan"), float("nan"), float("nan"))


def run_load(
    *,
    scenario: str,
    agents: list[dict[str, Any]],
    hosts: list[str],
    config: BenchConfig,
    params: dict[str, Any] | None = None,
    init: str | None = None,
    processes: int | None = None,
    started: threading.Event | None = None,
) -> LoadResult:
    """Run `scenario` ("module:function") for every agent, each in its own thread with its own
    connection, spread over load-generator processes that share nothing with the servers."""
    processes = max(1, min(processes or config.processes, len(agents)))
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    start_at = context.Value("d", 0.0)
    job = {
        "scenario": scenario,
        "init": init,
        "hosts": hosts,
        "params": {"database_url": config.database_url, **(params or {})},
        "warmup": config.warmup,
        "duration": config.duration,
    }
    shares = [agents[i::processes] for i in range(processes)]
    workers = [
        context.Process(target=_worker, args=(job, share, ready, go, start_at, results), daemon=True)
        for share in shares
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        if ready.get(timeout=120) == -1:
            break
    start_at.value = time.time() + 0.2
    go.set()
    if started is not None:
        started.set()
    merged_latencies: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    warmup_errors: Counter[str] = Counter()
    counters: Counter[str] = Counter()
    slow: list[tuple[float, str, int]] = []
    cycles = 0
    crashes = []
    for _ in workers:
        part = results.get(timeout=config.warmup + config.duration + 300)
        if "crash" in part:
            crashes.append(part["crash"])
            continue
        cycles += part["cycles"]
        for op, values in part["latencies"].items():
            merged_latencies.setdefault(op, []).extend(values)
        errors.update(part["errors"])
        warmup_errors.update(part["warmup_errors"])
        counters.update(part["counters"])
        slow.extend(part["slow"])
    for worker in workers:
        worker.join(timeout=30)
    if crashes:
        raise RuntimeError("load generator crashed:\n" + "\n".join(crashes))
    return LoadResult(
        scenario=scenario,
        agents=len(agents),
        duration=config.duration,
        cycles=cycles,
        ops={op: OpStats.of(values, config.duration) for op, values in merged_latencies.items()},
        errors=dict(errors.most_common()),
        warmup_errors=dict(warmup_errors.most_common()),
        counters=dict(counters),
        slow=sorted(slow)[:40],
    )


def run_rounds(config: BenchConfig, cases: list[tuple[str, Callable[[], LoadResult]]]) -> dict[str, LoadResult]:
    """Run every case `config.rounds` times, interleaved (floor, hub, floor, hub...) so a drift in the
    host's speed hits both alike; keep each case's median round by its main rate."""
    collected: dict[str, list[LoadResult]] = {name: [] for name, _ in cases}
    for round_number in range(config.rounds):
        for name, run in cases:
            result = run()
            collected[name].append(result)
            label = f"[round {round_number + 1}/{config.rounds}] " if config.rounds > 1 else ""
            print(f"  {label}{name}: {result.cycle_rate:,.1f}/s, errors {result.error_count}", flush=True)
    return {name: sorted(results, key=lambda r: r.cycle_rate)[len(results) // 2] for name, results in collected.items()}


# --- the report ----------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the report: a measured rate next to the floor measured in the same run."""

    suite: str
    case: str
    layout: str
    rate: float
    unit: str
    p50: float
    p99: float
    errors: int
    floor: str = ""
    floor_rate: float | None = None
    target_ratio: float | None = None  # e.g. 0.5 = at least 50 % of the floor
    target_p99: float | None = None  # ms
    target_rate: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.floor_rate:
            return self.rate / self.floor_rate
        return None

    @property
    def verdict(self) -> str:
        checks = []
        if self.target_ratio is not None and self.ratio is not None:
            checks.append(self.ratio >= self.target_ratio)
        if self.target_p99 is not None:
            checks.append(self.p99 < self.target_p99)
        if self.target_rate is not None:
            checks.append(self.rate >= self.target_rate)
        if self.errors:
            checks.append(False)
        if not checks:
            return ""
        return "ok" if all(checks) else "MISS"


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def format_table(rows: Sequence[Row]) -> str:
    headers = ["case", "layout", "rate", "unit", "p50 ms", "p99 ms", "err", "floor", "floor rate", "ratio", "target"]
    lines = []
    for row in rows:
        lines.append(
            [
                row.case,
                row.layout,
                _fmt(row.rate),
                row.unit,
                _fmt(row.p50),
                _fmt(row.p99),
                str(row.errors),
                row.floor or "-",
                _fmt(row.floor_rate),
                f"{row.ratio:.0%}" if row.ratio is not None else "-",
                row.verdict or "-",
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    numeric = {2, 4, 5, 6, 8, 9}

    def fmt_line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )

    out = [fmt_line(headers), fmt_line(["-" * w for w in widths])]
    out += [fmt_line(line) for line in lines]
    return "\n".join(out)


def format_markdown(rows: Sequence[Row]) -> str:
    out = [
        "| case | layout | rate | p50 ms | p99 ms | errors | floor (same run) | ratio | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        floor = f"{row.floor}: {_fmt(row.floor_rate)}" if row.floor else "-"
        ratio = f"{row.ratio:.0%}" if row.ratio is not None else "-"
        out.append(
            f"| {row.case} | {row.layout} | {_fmt(row.rate)} {row.unit} | {_fmt(row.p50)} | {_fmt(row.p99)} "
            f"| {row.errors} | {floor} | {ratio} | {row.verdict or '-'} |"
        )
    return "\n".join(out)


def op_details(result: LoadResult) -> dict[str, Any]:
    """Per-operation figures, for the JSON file and the detail lines under the table."""
    return {
        "cycles_per_s": round(result.cycle_rate, 2),
        "ops": {
            name: {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(stats).items()}
            for name, stats in result.ops.items()
        },
        "counters": result.counters,
        "errors": result.errors,
        "warmup_errors": result.warmup_errors,
        "slow_requests": result.slow,
    }


def format_details(rows: Sequence[Row]) -> str:
    out = []
    for row in rows:
        ops = row.details.get("ops") or {}
        if len(ops) < 2 and not row.details.get("counters") and not row.details.get("errors"):
            continue
        parts = [
            f"{name} {stats['rate']:.0f}/s p50 {stats['p50']:.1f} p99 {stats['p99']:.1f}" for name, stats in ops.items()
        ]
        line = f"  {row.case} [{row.layout}]: " + "; ".join(parts)
        if row.details.get("counters"):
            line += f"; counters {row.details['counters']}"
        if row.details.get("errors"):
            line += f"; errors {dict(list(row.details['errors'].items())[:3])}"
        out.append(line)
    return "\n".join(out)


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"cpus": os.cpu_count()}
    with suppress(OSError):
        facts["loadavg_at_end"] = os.getloadavg()
    return facts


def save_results(suite: str, rows: Sequence[Row], config: BenchConfig, notes: dict[str, Any] | None = None) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{stamp}-{suite}.json"
    document = {
        "suite": suite,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {k: v for k, v in asdict(config).items() if k != "database_url"},
        "machine": machine_facts(),
        "notes": notes or {},
        "rows": [{**asdict(row), "ratio": row.ratio, "verdict": row.verdict} for row in rows],
    }
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


def report(suite: str, rows: Sequence[Row], config: BenchConfig, notes: dict[str, Any] | None = None) -> Path:
    print()
    print(format_table(rows))
    details = format_details(rows)
    if details:
        print("\nper operation:")
        print(details)
    path = save_results(suite, rows, config, notes)
    print(f"\nresults: {path.relative_to(ROOT)}\n", flush=True)
    return path
