"""Issue 17: the embedded default (`make run`) against the production layout, both on one SQLite file.

The inbox loop of bench_inbox (each of N agents repeats {send an entry to the next agent's role, fetch
its unread, bulk-ack them}) at N = 4 and 16, with the headers memoryhub's own client sends (an
Idempotency-Key on every write), against:
- `embedded`: what `make run` starts (python -m memoryhub.embedded: one process, REST through the WSGI
  handler in a thread pool, websockets and sweepers in the same process);
- `gunicorn-sync` x4 on the same file, the reference (production's REST layout);
- `embedded-daphne`: the same application with daphne (Twisted) in front instead of uvicorn;
- `daphne`: what `make run` started before (Django's ASGI handler for REST), for the record;
- and, for scale, the production layout itself on PostgreSQL + Redis (gunicorn sync x4).
No Redis anywhere: the in-memory channel layer, as `make run` has it. The servers run side by side on
the one file and the cases are interleaved, so growth of the tables and drift of the host hit all alike.
Targets: embedded cycles/s at N = 16 >= 50 % of gunicorn sync's, send/fetch/ack p99 <= 100 ms.

    python -m tests.bench.run embedded [--rounds 3]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from contextlib import ExitStack
from typing import Any

from .bench_inbox import role_of
from .harness import RESULTS_DIR, ROOT, BenchConfig, LoadResult, Row, op_details, report, run_load, run_rounds, server

SIZES = (4, 16)
LAYOUTS = ("gunicorn-sync", "embedded", "embedded-daphne", "daphne")
REFERENCE = "gunicorn-sync"
# The production layout itself (gunicorn sync x4 on PostgreSQL + Redis), for scale, in the same run.
PRODUCTION = "gunicorn-sync on PostgreSQL"
# gunicorn's workers keep their connection, as the embedded server's threads do (production does too).
LAYOUT_ENV = {"gunicorn-sync": {"DATABASE_CONN_MAX_AGE": "60"}}
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
# What memoryhub.client sends with every request (memoryhub/client/_base.py: Config.headers, Call).
CLIENT_HEADERS = {"Accept": "application/json", "User-Agent": "memoryhub-client/0.1"}


# --- load (runs in the load-generator processes) -------------------------------------------------------


def write_headers() -> dict[str, str]:
    """A write's headers as the client sends them: a fresh Idempotency-Key per logical write."""
    return {**CLIENT_HEADERS, "Idempotency-Key": str(uuid.uuid4())}


def client_inbox_cycle(s) -> None:
    size = s.params["size"]
    n = s.state["sent"] = s.state.get("sent", 0) + 1
    s.request(
        "send",
        "POST",
        "/api/v1/contexts/",
        {"to_role": role_of((s.index + 1) % size), "context_type": "note", "content": {"n": n, "from": s.agent["id"]}},
        headers=write_headers(),
        ok=(201,),
    )
    page = s.request("fetch", "GET", "/api/v1/inbox/?state=unread&limit=100", headers=CLIENT_HEADERS).json()
    ids = [entry["id"] for entry in page["results"]]
    s.count("fetched", len(ids))
    if ids:
        s.request("ack", "POST", "/api/v1/inbox/ack/", {"ids": ids}, headers=write_headers())


# --- the SQLite file -------------------------------------------------------------------------------------


def sqlite_environment(path: str) -> dict[str, str]:
    """What every process of this suite runs with: the one file, no Redis, the hub's own URLs."""
    return {
        "DATABASE_URL": f"sqlite:///{path}",
        "REDIS_URL": "",
        "MEMORYHUB_URLCONF": "memoryhub.urls",
        # The production layout gets the in-process sweeper too (no Redis, no beat): as make run would.
        "MEMORYHUB_INPROCESS_SWEEPER": "true",
    }


def _setup_in_subprocess(path: str, count: int) -> list[dict[str, Any]]:
    """Migrate a fresh file and create the agents, in a process of its own: this one's Django is set up
    on the PostgreSQL bench database."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "memoryhub.settings", **sqlite_environment(path)}
    code = f"from tests.bench.bench_embedded import _create_agents; _create_agents({count})"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    output = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _create_agents(count: int) -> None:
    from memoryhub.actors import SYSTEM
    from memoryhub.agents.services import agent_create

    agents = []
    for index in range(count):
        agent, token = agent_create(actor=SYSTEM, agent_id=f"emb-{index}", role=role_of(index))
        agents.append({"id": agent.id, "role": agent.role, "token": token, "index": index})
    print(json.dumps(agents))


# --- the run (parent process) -------------------------------------------------------------------------


def _pg_agents(config: BenchConfig, count: int) -> list[dict[str, Any]]:
    """The same agents in the PostgreSQL bench database, for the production layout's row."""
    from .bench_inbox import _create_role_agents
    from .harness import reset_database

    reset_database(config)
    return _create_role_agents(count, prefix="emb")


def _case(name: str, base: str, agents: list[dict[str, Any]], size: int, config: BenchConfig, rounds: dict):
    """A case for run_rounds that also keeps every round's result (for the spread)."""

    def run_once() -> LoadResult:
        result = run_load(
            scenario="tests.bench.bench_embedded:client_inbox_cycle",
            agents=agents[:size],
            hosts=[base],
            config=config,
            params={"size": size},
        )
        rounds.setdefault(name, []).append(result)
        return result

    return name, run_once


def _spread(results: list[LoadResult]) -> dict[str, Any]:
    worst_p99 = [max(r.op(op).p99 for op in ("send", "fetch", "ack")) for r in results]
    return {
        "cycles_per_s": [round(r.cycle_rate, 1) for r in results],
        "worst_p99_ms": [round(p, 1) for p in worst_p99],
    }


def run(config: BenchConfig) -> list[Row]:
    path = str(RESULTS_DIR / "embedded-bench.sqlite3")
    RESULTS_DIR.mkdir(exist_ok=True)
    agents = _setup_in_subprocess(path, max(SIZES) + 1)
    warm, agents = agents[-1], agents[:-1]
    layouts = [layout for layout in (config.layouts or LAYOUTS) if layout in LAYOUTS]
    if REFERENCE not in layouts:
        layouts.insert(0, REFERENCE)
    pg_agents = _pg_agents(config, max(SIZES))  # sets config.warm_token for the PostgreSQL server
    print(f"\n== inbox loop on one SQLite file ({path}), layouts {', '.join(layouts)} ==", flush=True)
    with ExitStack() as stack:
        production = stack.enter_context(server(REFERENCE, config))
        pg_token, config.warm_token = config.warm_token, warm["token"]
        bases = {
            layout: stack.enter_context(
                server(layout, config, extra_env={**sqlite_environment(path), **LAYOUT_ENV.get(layout, {})})
            )
            for layout in layouts
        }
        config.warm_token = pg_token
        cases, rounds = [], {}
        for size in SIZES:
            cases.append(_case(f"{PRODUCTION} N={size}", production, pg_agents, size, config, rounds))
            cases += [_case(f"{layout} N={size}", bases[layout], agents, size, config, rounds) for layout in layouts]
        results: dict[str, LoadResult] = run_rounds(config, cases)
    rows = []
    for size in SIZES:
        reference = results[f"{REFERENCE} N={size}"]
        for layout in [PRODUCTION, *layouts]:
            result = results[f"{layout} N={size}"]
            worst = max((result.op(op) for op in ("send", "fetch", "ack")), key=lambda stats: stats.p99)
            compared = layout != REFERENCE
            rows.append(
                Row(
                    suite="embedded",
                    case=f"inbox loop, client headers, N={size}",
                    layout=layout if layout == PRODUCTION else f"{layout} (SQLite)",
                    rate=result.cycle_rate,
                    unit="cycles/s",
                    p50=worst.p50,
                    p99=worst.p99,
                    errors=result.error_count,
                    floor=f"{REFERENCE} on the same SQLite file" if compared else "",
                    floor_rate=reference.cycle_rate if compared else None,
                    target_ratio=TARGET_RATIO if layout == "embedded" else None,
                    target_p99=TARGET_P99_MS if layout == "embedded" else None,
                    details={
                        **op_details(result),
                        "p50_p99_of": "slowest op by p99",
                        "rounds": _spread(rounds[f"{layout} N={size}"]),
                    },
                )
            )
    report("embedded", rows, config, notes={"sizes": SIZES, "layouts": layouts, "sqlite_file": path})
    print("every round (cycles/s; worst p99 ms):")
    for row in rows:
        spread = row.details["rounds"]
        print(f"  {row.case} [{row.layout}]: {spread['cycles_per_s']}; {spread['worst_p99_ms']}")
    return rows
