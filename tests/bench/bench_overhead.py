"""Issue 11: what the per-request hardening costs on the hottest path, memory reads (16 agents, 16 keys,
gunicorn sync x4, PostgreSQL), measured against a base tree in the same run, rounds interleaved:

- base: the code before (MEMORYHUB_BENCH_BASE_TREE, a checkout or `git archive` of an earlier commit);
- this code, as deployed: the input guard, the request log line and the request metrics;
- this code with MEMORYHUB_REQUEST_LOG=false (the JSON line's share of the cost).

    git archive main | (mkdir -p /tmp/hub-base && tar -x -C /tmp/hub-base)
    MEMORYHUB_BENCH_BASE_TREE=/tmp/hub-base python -m tests.bench.run overhead --rounds 3

The server's log (the JSON lines included) goes to a file, as in production behind a log collector.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .bench_memories import setup
from .harness import BenchConfig, LoadResult, Row, op_details, report, run_load, run_rounds, server

LAYOUT = "gunicorn-sync"
TARGET_RATIO = 0.95  # the hardening may cost at most 5 % of the reads


def _row(case: str, result: LoadResult, base: LoadResult | None) -> Row:
    read = result.op("read")
    return Row(
        suite="overhead",
        case=case,
        layout=LAYOUT,
        rate=result.cycle_rate,
        unit="reads/s",
        p50=read.p50,
        p99=read.p99,
        errors=result.error_count,
        floor="base" if base is not None else "",
        floor_rate=base.cycle_rate if base is not None else None,
        target_ratio=TARGET_RATIO if base is not None else None,
        details=op_details(result),
    )


def run(config: BenchConfig) -> list[Row]:
    base_tree = os.environ.get("MEMORYHUB_BENCH_BASE_TREE")
    if not base_tree:
        print("\n== overhead: skipped (set MEMORYHUB_BENCH_BASE_TREE to a tree of the code to compare with) ==")
        return []
    agents = setup(config)
    print(f"\n== overhead: memory reads, this code against {base_tree} ==", flush=True)
    with (
        server(LAYOUT, config, tree=Path(base_tree)) as base,
        server(LAYOUT, config) as hardened,
        server(LAYOUT, config, extra_env={"MEMORYHUB_REQUEST_LOG": "false"}) as quiet,
    ):

        def case(host: str):
            params: dict[str, Any] = {}
            return lambda: run_load(
                scenario="tests.bench.bench_memories:hub_read",
                agents=agents,
                hosts=[host],
                config=config,
                params=params,
            )

        results = run_rounds(
            config,
            [("base", case(base)), ("this code", case(hardened)), ("this code, no request log", case(quiet))],
        )
    rows = [
        _row("memory read, 16 keys: base", results["base"], None),
        _row("memory read, 16 keys: this code", results["this code"], results["base"]),
        _row("memory read, 16 keys: this code, request log off", results["this code, no request log"], results["base"]),
    ]
    report("overhead", rows, config, notes={"base_tree": base_tree, "layout": LAYOUT})
    return rows
