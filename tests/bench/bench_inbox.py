"""Issue 3: the context inbox on PostgreSQL.

(a) `run_loop`: N agents each repeating {send an entry to the next agent's role, fetch its own unread,
    ack what it fetched (one bulk ack)}, at N = 4, 16, 64: cycles/s and p50/p99 per operation.
    Each agent has a role of its own, so a send makes exactly one receipt whatever N is. Next to it,
    the same three-request shape against the floor endpoints (write, read, write) at the same N.
    Targets: >= 165 cycles/s at 16; at 64 >= 80 % of the rate at 16.
(c) `run_scale`: `GET inbox/?state=unread` latency with 1,000 and with 1,000,000 entries in the table
    (bulk-loaded with INSERT ... SELECT generate_series, half of them acked history of the measured
    agents, half unread backlog of other agents); every measured agent has 20 unread entries.
    Target: p50 at 1,000,000 within 1.5x of p50 at 1,000.
"""

from __future__ import annotations

import time
from typing import Any

from .harness import (
    BenchConfig,
    LoadResult,
    Row,
    op_details,
    report,
    run_load,
    run_rounds,
    server,
)

LOOP_SIZES = (4, 16, 64)
TARGET_AT_16 = 165.0
SCALE_KEEP = 0.8
UNREAD_PER_AGENT = 20
SCALE_AGENTS = 16
FILLER_AGENTS = 10
TARGET_SCALE_RATIO = 1.5


def role_of(index: int) -> str:
    return f"ibx-r{index}"


# --- load (runs in the load-generator processes) -------------------------------------------------------


def inbox_cycle(s) -> None:
    size = s.params.get("size", 16)
    target = role_of((s.index + 1) % size)
    n = s.state["sent"] = s.state.get("sent", 0) + 1
    s.request(
        "send",
        "POST",
        "/api/v1/contexts/",
        {"to_role": target, "context_type": "note", "content": {"n": n, "from": s.agent["id"]}},
        ok=(201,),
    )
    page = s.request("fetch", "GET", "/api/v1/inbox/?state=unread&limit=100").json()["results"]
    ids = [entry["id"] for entry in page]
    s.count("fetched", len(ids))
    if ids:
        s.request("ack", "POST", "/api/v1/inbox/ack/", {"ids": ids})


def floor_cycle(s) -> None:
    """The same request shape on the floor endpoints: a write, a read, a write."""
    path = f"/api/bench/floor/items/{1 + s.index}/"
    version = s.state.get("version")
    if version is None:
        version = s.request("read", "GET", path).json()["version"]
    version = s.request("write", "PUT", path, {"value": {"n": 1}}, headers={"If-Match": f'"{version}"'}).json()[
        "version"
    ]
    s.request("read", "GET", "/api/bench/floor/read/")
    version = s.request("write", "PUT", path, {"value": {"n": 2}}, headers={"If-Match": f'"{version}"'}).json()[
        "version"
    ]
    s.state["version"] = version


def inbox_fetch(s) -> None:
    s.request("fetch", "GET", "/api/v1/inbox/?state=unread&limit=100")


# --- (a) the loop ---------------------------------------------------------------------------------------


def _create_role_agents(count: int, prefix: str = "ibx") -> list[dict[str, Any]]:
    """One agent per role (role_of(i)), created through the service like every bench agent."""
    from memoryhub.actors import SYSTEM
    from memoryhub.agents.services import agent_create

    from . import floor

    agents = []
    for index in range(count):
        agent, token = agent_create(actor=SYSTEM, agent_id=f"{prefix}-{index}", role=role_of(index))
        agents.append({"id": agent.id, "role": agent.role, "token": token, "index": index})
    floor.register_tokens(agents)
    return agents


def setup_loop(config: BenchConfig) -> list[dict[str, Any]]:
    from .harness import reset_database

    reset_database(config)
    return _create_role_agents(max(LOOP_SIZES))


def setup_loop_16(config: BenchConfig) -> list[dict[str, Any]]:
    """For the profiler: 16 agents whose roles wrap at 16."""
    return setup_loop(config)[:16]


def run_loop(config: BenchConfig) -> list[Row]:
    agents = setup_loop(config)
    layout = config.rest_layout
    rows: list[Row] = []
    results: dict[str, LoadResult] = {}
    print(f"\n== inbox loop on {layout} ==", flush=True)
    with server(layout, config) as base:
        cases = []
        for size in LOOP_SIZES:
            some = agents[:size]
            cases.append(
                (
                    f"floor N={size}",
                    lambda some=some, size=size: run_load(
                        scenario="tests.bench.bench_inbox:floor_cycle", agents=some, hosts=[base], config=config
                    ),
                )
            )
            cases.append(
                (
                    f"inbox N={size}",
                    lambda some=some, size=size: run_load(
                        scenario="tests.bench.bench_inbox:inbox_cycle",
                        agents=some,
                        hosts=[base],
                        config=config,
                        params={"size": size},
                    ),
                )
            )
        results = run_rounds(config, cases)
    at_16 = results["inbox N=16"].cycle_rate
    for size in LOOP_SIZES:
        result, floor = results[f"inbox N={size}"], results[f"floor N={size}"]
        worst = max((result.op(op) for op in ("send", "fetch", "ack")), key=lambda stats: stats.p99)
        rows.append(
            Row(
                suite="inbox",
                case=f"inbox loop send+fetch+ack, N={size}",
                layout=layout,
                rate=result.cycle_rate,
                unit="cycles/s",
                p50=worst.p50,
                p99=worst.p99,
                errors=result.error_count,
                floor="floor write+read+write",
                floor_rate=floor.cycle_rate,
                target_rate=TARGET_AT_16 if size == 16 else (SCALE_KEEP * at_16 if size == 64 else None),
                details={**op_details(result), "floor": op_details(floor), "p50_p99_of": "slowest op by p99"},
            )
        )
    report("inbox", rows, config, notes={"sizes": LOOP_SIZES, "rate_at_16": at_16})
    print(
        f"inbox loop: {at_16:,.1f} cycles/s at 16 (target {TARGET_AT_16:g}); at 64: "
        f"{results['inbox N=64'].cycle_rate / at_16:.0%} of the rate at 16 (target >= {SCALE_KEEP:.0%})"
        if at_16
        else "inbox loop: no cycles at 16",
        flush=True,
    )
    return rows


# --- (c) fetch latency against table size ----------------------------------------------------------------


def bulk_load_entries(total: int) -> float:
    """Make the entry table hold `total` rows (each with its one receipt) with INSERT ... SELECT over
    generate_series: even ids are read and acked history of the measured agents, odd ids are unread
    backlog of the filler agents. Returns the seconds it took."""
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0), count(*) FROM contexts_contextentry")
        top, present = cursor.fetchone()
        missing = total - present
        if missing <= 0:
            return 0.0
        cursor.execute(
            """
            INSERT INTO contexts_contextentry (id, from_role, sender, to_role, namespace, context_type, subject,
                content, requires_ack, thread_id, created_at, expires_at, expired_at, from_agent_id, reply_to_id,
                to_agent_id)
            SELECT %(top)s + g, 'fill-r0', 'fill-0', r.role, 'inbox:' || r.role, 'note', '',
                jsonb_build_object('n', g), false, NULL, now() - interval '1 day' + g * interval '1 ms', NULL, NULL,
                'fill-0', NULL, NULL
            FROM generate_series(1, %(missing)s) AS g,
                LATERAL (SELECT CASE WHEN g %% 2 = 0 THEN 'ibx-r' || ((g / 2) %% %(agents)s)
                                     ELSE 'fill-r' || (g %% %(fillers)s) END AS role) AS r
            """,
            {"top": top, "missing": missing, "agents": SCALE_AGENTS, "fillers": FILLER_AGENTS},
        )
        cursor.execute(
            """
            INSERT INTO contexts_receipt (entry_id, agent_id, read_at, acked_at, ack_note, entry_expired, requires_ack)
            SELECT e.id, a.id,
                CASE WHEN (e.id - %(top)s) %% 2 = 0 THEN e.created_at END,
                CASE WHEN (e.id - %(top)s) %% 2 = 0 THEN e.created_at END,
                '', false, e.requires_ack
            FROM contexts_contextentry e JOIN agents_agent a ON a.role = e.to_role
            WHERE e.id > %(top)s
            """,
            {"top": top},
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('contexts_contextentry', 'id'), (SELECT max(id) FROM contexts_contextentry))"
        )
        cursor.execute("ANALYZE contexts_contextentry")
        cursor.execute("ANALYZE contexts_receipt")
    return time.monotonic() - started


def _send_unread(agents: list[dict[str, Any]], sender) -> None:
    """Every measured agent gets UNREAD_PER_AGENT entries through the service (the newest rows)."""
    from contexts.services import context_send

    for agent in agents:
        for n in range(UNREAD_PER_AGENT):
            context_send(actor=sender, to_role=agent["role"], context_type="note", content={"n": n})


def run_scale(config: BenchConfig) -> list[Row]:
    from memoryhub.actors import Actor

    from .harness import db_count, reset_database

    reset_database(config)
    agents = _create_role_agents(SCALE_AGENTS)
    fillers = []
    from memoryhub.actors import SYSTEM
    from memoryhub.agents.services import agent_create

    for index in range(FILLER_AGENTS):
        agent, _ = agent_create(actor=SYSTEM, agent_id=f"fill-{index}", role=f"fill-r{index}")
        fillers.append(agent)
    sender = Actor.for_agent(fillers[0])
    big = 100_000 if config.quick else 1_000_000
    sizes = (1_000, big)
    layout = config.rest_layout
    rows: list[Row] = []
    measured: dict[int, dict[str, LoadResult]] = {}
    for size in sizes:
        # The first size counts the entries sent through the service below; the next ones do not need to.
        seconds = bulk_load_entries(size - SCALE_AGENTS * UNREAD_PER_AGENT if size == sizes[0] else size)
        if size == sizes[0]:
            _send_unread(agents, sender)
        entries, receipts = db_count("contexts_contextentry"), db_count("contexts_receipt")
        print(
            f"\n== inbox fetch with {entries:,} entries, {receipts:,} receipts (loaded in {seconds:.0f}s) ==",
            flush=True,
        )
        with server(layout, config) as base:
            measured[size] = run_rounds(
                config,
                [
                    (
                        f"fetch 1 agent, {entries:,} entries",
                        lambda: run_load(
                            scenario="tests.bench.bench_inbox:inbox_fetch",
                            agents=agents[:1],
                            hosts=[base],
                            config=config,
                        ),
                    ),
                    (
                        f"fetch 16 agents, {entries:,} entries",
                        lambda: run_load(
                            scenario="tests.bench.bench_inbox:inbox_fetch", agents=agents, hosts=[base], config=config
                        ),
                    ),
                    (
                        "floor read, 16 agents",
                        lambda: run_load(
                            scenario="tests.bench.floor_loops:floor_read", agents=agents, hosts=[base], config=config
                        ),
                    ),
                ],
            )
        for name, result in measured[size].items():
            if name.startswith("floor"):
                continue
            fetch = result.op("fetch")
            rows.append(
                Row(
                    suite="inbox-scale",
                    case=f"inbox fetch (20 unread), {name.split(', ')[0].removeprefix('fetch ')}, {entries:,} entries",
                    layout=layout,
                    rate=result.cycle_rate,
                    unit="fetches/s",
                    p50=fetch.p50,
                    p99=fetch.p99,
                    errors=result.error_count,
                    floor="floor read",
                    floor_rate=measured[size]["floor read, 16 agents"].cycle_rate,
                    details=op_details(result),
                )
            )
    small, large = measured[sizes[0]], measured[sizes[1]]
    one_small, many_small, floor_small = small.values()
    one_large, many_large, floor_large = large.values()
    # The host's speed drifts between the two measurements (they cannot be interleaved: the table
    # only grows), so the 16-agent ratio is also shown corrected by the floor's own drift.
    drift = floor_small.cycle_rate / floor_large.cycle_rate if floor_large.cycle_rate else float("nan")
    ratios = {
        "1 agent p50 (the target)": one_large.op("fetch").p50 / one_small.op("fetch").p50,
        "16 agents p50": many_large.op("fetch").p50 / many_small.op("fetch").p50,
        "16 agents p50, corrected by the floor's drift": many_large.op("fetch").p50
        / many_small.op("fetch").p50
        / drift,
    }
    report("inbox-scale", rows, config, notes={"sizes": sizes, "p50_ratio_large_to_small": ratios, "drift": drift})
    for name, ratio in ratios.items():
        verdict = "ok" if ratio <= TARGET_SCALE_RATIO else "MISS"
        print(f"fetch {name}, {big:,} vs 1,000 entries: {ratio:.2f}x (target <= {TARGET_SCALE_RATIO}x) {verdict}")
    return rows
