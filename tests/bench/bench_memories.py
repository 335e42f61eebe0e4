"""Issue 2: memory reads and optimistic writes, 16 agents on 16 keys and on one hot key, PostgreSQL,
each next to its floor measured on the same server in the same run, for each server layout.

- read: `GET memories/{ns}/{key}/` in a loop; floor: a minimal token-authenticated DRF read.
- write: a read-modify-write cycle, `GET` then `PUT` with `If-Match` (on 412 retry with the current
  version from the error); floor: the same loop against a minimal versioned-write endpoint.
Targets: hub >= 50 % of its floor, p99 < 50 ms.
"""

from __future__ import annotations

from typing import Any

from .floor_loops import put_until_written
from .harness import BenchConfig, LoadResult, Row, op_details, report, run_load, run_rounds, server

AGENTS = 16
ROLE = "bench"
POLICIES = {
    "namespaces": [
        {"pattern": "bench:*", "readers": [ROLE], "writers": [ROLE], "write_mode": "optimistic"},
    ],
}
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


# --- load (runs in the load-generator processes) -------------------------------------------------------


def memory_path(s) -> str:
    if s.params.get("hot"):
        return "/api/v1/memories/bench:hot/k/"
    return f"/api/v1/memories/bench:keys/k{s.index % AGENTS}/"


def hub_read(s) -> None:
    s.request("read", "GET", memory_path(s))


def hub_rmw(s) -> None:
    path = memory_path(s)
    version = s.request("read", "GET", path).json()["version"]
    put_until_written(s, path, version, {"content": {"n": version, "by": s.agent["id"]}, "reason": "bench"})


# --- setup and the run (parent process, Django configured) --------------------------------------------


def setup(config: BenchConfig) -> list[dict[str, Any]]:
    from memoryhub.actors import SYSTEM
    from memoryhub.memories.services import memory_put

    from .harness import apply_policies, create_agents, reset_database

    reset_database(config)
    apply_policies(POLICIES)
    agents = create_agents("mem", AGENTS, ROLE)
    for index in range(AGENTS):
        memory_put(actor=SYSTEM, namespace="bench:keys", key=f"k{index}", content={"n": 0})
    memory_put(actor=SYSTEM, namespace="bench:hot", key="k", content={"n": 0})
    return agents


def _row(case: str, layout: str, result: LoadResult, floor: LoadResult, *, write: bool) -> Row:
    main = result.op("write" if write else "read")
    return Row(
        suite="memories",
        case=case,
        layout=layout,
        rate=result.cycle_rate,
        unit="writes/s" if write else "reads/s",
        p50=main.p50,
        p99=main.p99,
        errors=result.error_count,
        floor="floor RMW" if write else "floor read",
        floor_rate=floor.cycle_rate,
        target_ratio=TARGET_RATIO,
        target_p99=TARGET_P99_MS,
        details={**op_details(result), "floor": op_details(floor)},
    )


def run(config: BenchConfig) -> list[Row]:
    agents = setup(config)
    rows: list[Row] = []
    for layout in config.layouts_to_compare:
        print(f"\n== memories on {layout} ==", flush=True)
        with server(layout, config) as base:

            def case(scenario: str, **params: Any):
                return lambda: run_load(scenario=scenario, agents=agents, hosts=[base], config=config, params=params)

            results = run_rounds(
                config,
                [
                    ("floor read", case("tests.bench.floor_loops:floor_read")),
                    ("read 16 keys", case("tests.bench.bench_memories:hub_read")),
                    ("read hot key", case("tests.bench.bench_memories:hub_read", hot=True)),
                    ("floor RMW 16 items", case("tests.bench.floor_loops:floor_rmw")),
                    ("RMW 16 keys", case("tests.bench.bench_memories:hub_rmw")),
                    ("floor RMW hot item", case("tests.bench.floor_loops:floor_rmw", hot=True)),
                    ("RMW hot key", case("tests.bench.bench_memories:hub_rmw", hot=True)),
                ],
            )
        floor_read = results["floor read"]
        rows.append(_floor_row("floor read (token lookup)", layout, floor_read, "read"))
        rows.append(_row("memory read, 16 keys", layout, results["read 16 keys"], floor_read, write=False))
        rows.append(_row("memory read, hot key", layout, results["read hot key"], floor_read, write=False))
        rows.append(_floor_row("floor RMW, 16 items", layout, results["floor RMW 16 items"], "write"))
        rows.append(
            _row(
                "memory GET+PUT If-Match, 16 keys",
                layout,
                results["RMW 16 keys"],
                results["floor RMW 16 items"],
                write=True,
            )
        )
        rows.append(_floor_row("floor RMW, hot item", layout, results["floor RMW hot item"], "write"))
        rows.append(
            _row(
                "memory GET+PUT If-Match, hot key",
                layout,
                results["RMW hot key"],
                results["floor RMW hot item"],
                write=True,
            )
        )
    report("memories", rows, config, notes={"agents": AGENTS, "layouts": config.layouts_to_compare})
    return rows


def _floor_row(case: str, layout: str, result: LoadResult, op: str) -> Row:
    main = result.op(op)
    return Row(
        suite="memories",
        case=case,
        layout=layout,
        rate=result.cycle_rate,
        unit="writes/s" if op == "write" else "reads/s",
        p50=main.p50,
        p99=main.p99,
        errors=result.error_count,
        details=op_details(result),
    )
