"""Issue 4: lock acquire+release and task claim+complete cycles/s at 16 agents on PostgreSQL, next to
(a) the raw database doing the same kind of statements from Python (psycopg threads, no HTTP) and
(b) a minimal authenticated DRF versioned write on the same server, all in the same run.

- lock cycle: `POST locks/` (exclusive, one resource per agent) then `DELETE locks/{id}/`;
  raw: INSERT a lease row on a unique resource + an event row, commit; DELETE it + an event row, commit.
- task cycle: `POST tasks/claim/` then `POST tasks/{id}/complete/` over a preloaded queue;
  raw: UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) + an event row, commit; complete + event, commit.
- the raw versioned write (UPDATE ... WHERE version = %s + event row) is shown with and without the
  hub's global event-sequence row, to show what one log-wide seq costs.
Target: each hub write request (two per cycle) at >= 50 % of the DRF write floor's requests/s.
"""

from __future__ import annotations

from typing import Any

from .harness import BenchConfig, LoadResult, Row, op_details, report, run_load, run_rounds, server

AGENTS = 16
ROLE = "worker"
TARGET_RATIO = 0.5


# --- load (runs in the load-generator processes) -------------------------------------------------------


def lock_cycle(s) -> None:
    lease = s.request(
        "acquire",
        "POST",
        "/api/v1/locks/",
        {"resources": [f"bench:res-{s.index}"], "mode": "exclusive", "ttl_seconds": 30},
        ok=(201,),
    ).json()
    s.request("release", "DELETE", f"/api/v1/locks/{lease['id']}/", {"holder_token": lease["holder_token"]})


def task_cycle(s) -> int | None:
    reply = s.request("claim", "POST", "/api/v1/tasks/claim/", {"ttl_seconds": 60}, ok=(200, 204))
    if reply.status == 204:
        s.count("queue_empty")
        return 0
    task = reply.json()
    s.request("complete", "POST", f"/api/v1/tasks/{task['id']}/complete/", {"result": {"ok": True}})
    return None


# --- setup and the run -----------------------------------------------------------------------------------


def preload_tasks(count: int) -> None:
    """Queue `count` hub tasks with one INSERT ... SELECT (their creation is not what is measured)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO tasks_task (role, kind, payload, status, priority, attempts, max_attempts, error, created_by,
                idempotency_key, created_at, updated_at, completed_by)
            SELECT %s, 'bench', jsonb_build_object('n', g), 'queued', 0, 0, 3, '', 'bench', '', now(), now(), ''
            FROM generate_series(1, %s) AS g
            """,
            [ROLE, count],
        )
        cursor.execute("ANALYZE tasks_task")


def setup(config: BenchConfig) -> list[dict[str, Any]]:
    from . import floor
    from .harness import create_agents, reset_database

    reset_database(config)
    agents = create_agents("crd", AGENTS, ROLE)
    per_round = config.warmup + config.duration
    preload_tasks(int(600 * per_round * config.rounds) + 5_000)
    floor.load_floor_tasks(int(4_000 * per_round * config.rounds) + 5_000, ROLE)
    return agents


def _row(case: str, layout: str, result: LoadResult, *, unit: str, rate: float, op: str, **extra: Any) -> Row:
    main = result.op(op)
    return Row(
        suite="coordination",
        case=case,
        layout=layout,
        rate=rate,
        unit=unit,
        p50=main.p50,
        p99=main.p99,
        errors=result.error_count,
        details=op_details(result),
        **extra,
    )


def run(config: BenchConfig) -> list[Row]:
    agents = setup(config)
    layout = config.rest_layout
    print(f"\n== coordination on {layout} ==", flush=True)
    with server(layout, config) as base:

        def case(scenario: str, **params: Any):
            return lambda: run_load(scenario=scenario, agents=agents, hosts=[base], config=config, params=params)

        results = run_rounds(
            config,
            [
                ("raw versioned write", case("tests.bench.floor_loops:raw_versioned_write")),
                ("raw versioned write + global seq", case("tests.bench.floor_loops:raw_versioned_write_seq")),
                ("raw lock cycle", case("tests.bench.floor_loops:raw_lock_cycle")),
                ("raw task cycle", case("tests.bench.floor_loops:raw_task_cycle", role=ROLE)),
                ("DRF write floor", case("tests.bench.floor_loops:floor_write")),
                ("hub lock cycle", case("tests.bench.bench_coordination:lock_cycle")),
                ("hub task cycle", case("tests.bench.bench_coordination:task_cycle")),
            ],
        )
    drf = results["DRF write floor"]
    raw = "raw SQL (no HTTP)"
    rows = [
        _row(
            "raw versioned write (UPDATE + event)",
            raw,
            results["raw versioned write"],
            unit="tx/s",
            rate=results["raw versioned write"].cycle_rate,
            op="write",
        ),
        _row(
            "raw versioned write + global seq row",
            raw,
            results["raw versioned write + global seq"],
            unit="tx/s",
            rate=results["raw versioned write + global seq"].cycle_rate,
            op="write",
            floor="raw versioned write",
            floor_rate=results["raw versioned write"].cycle_rate,
        ),
        _row(
            "DRF write floor (UPDATE + event)",
            layout,
            drf,
            unit="req/s",
            rate=drf.cycle_rate,
            op="write",
            floor="raw versioned write",
            floor_rate=results["raw versioned write"].cycle_rate,
        ),
    ]
    for name, raw_name, ops in (
        ("lock acquire+release", "raw lock cycle", ("acquire", "release")),
        ("task claim+complete", "raw task cycle", ("claim", "complete")),
    ):
        hub, floor_raw = results[f"hub {name.split()[0]} cycle"], results[raw_name]
        slowest = max(ops, key=lambda op: hub.op(op).p99)
        rows.append(_row(f"raw {name}", raw, floor_raw, unit="cycles/s", rate=floor_raw.cycle_rate, op=ops[0]))
        rows.append(
            _row(
                f"hub {name}",
                layout,
                hub,
                unit="cycles/s",
                rate=hub.cycle_rate,
                op=slowest,
                floor=f"raw {name}",
                floor_rate=floor_raw.cycle_rate,
            )
        )
        rows.append(
            _row(
                f"hub {name}: write requests",
                layout,
                hub,
                unit="req/s",
                rate=2 * hub.cycle_rate,
                op=slowest,
                floor="DRF write floor",
                floor_rate=drf.cycle_rate,
                target_ratio=TARGET_RATIO,
            )
        )
    report("coordination", rows, config, notes={"agents": AGENTS, "layout": layout})
    return rows
