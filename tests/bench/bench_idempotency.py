"""Issue 11 item 4: what an Idempotency-Key costs. Each family's loop runs with a fresh key on every write
(as memoryhub.client sends them) and without, same server, same run; each round runs the pair back to
back (keyed first in odd rounds) and the ratio reported is the median of the rounds' keyed/unkeyed
ratios (the host is shared). 16 agents, gunicorn sync x4, PostgreSQL.

- memory: `PUT memories/bench:lww/k{i}/` (a last-write-wins namespace, one key per agent);
- inbox: `POST contexts/` to the next agent's role;
- lock: `POST locks/` (one resource per agent) then `DELETE locks/{id}/`;
- task: `POST tasks/` then `POST tasks/claim/` then `POST tasks/{id}/complete/`.

With MEMORYHUB_BENCH_BASE_TREE (a `git archive` of the code before) the same loops run against a server
of that tree too, in the same rounds: the before and after of one run.

    git archive main | (mkdir -p /tmp/hub-base && tar -x -C /tmp/hub-base)
    MEMORYHUB_BENCH_BASE_TREE=/tmp/hub-base python -m tests.bench.run idempotency --rounds 3
Target: keyed >= 90 % of unkeyed for every family.
"""

from __future__ import annotations

import os
import statistics
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .harness import BenchConfig, LoadResult, Row, op_details, report, run_load, server

AGENTS = 16
ROLE = "idem"
POLICIES = {
    "namespaces": [
        {"pattern": "bench:*", "readers": [ROLE], "writers": [ROLE], "write_mode": "last_write_wins"},
        {"pattern": "inbox:*", "readers": [ROLE], "writers": [ROLE]},
    ],
}
LAYOUT = "gunicorn-sync"
TARGET_RATIO = 0.9
FAMILIES = {
    "memory PUT": ("memory_put", "write", "writes/s"),
    "context send": ("context_send", "send", "sends/s"),
    "lock acquire+release": ("lock_cycle", "acquire", "cycles/s"),
    "task create+claim+complete": ("task_cycle", "create", "cycles/s"),
}


# --- load (runs in the load-generator processes) -------------------------------------------------------


def memory_put(s) -> None:
    n = s.state["n"] = s.state.get("n", 0) + 1
    s.request("write", "PUT", f"/api/v1/memories/bench:lww/k{s.index}/", {"content": {"n": n}}, ok=(200, 201))


def context_send(s) -> None:
    n = s.state["n"] = s.state.get("n", 0) + 1
    body = {"to_agent": f"idem-{(s.index + 1) % AGENTS}", "context_type": "note", "content": {"n": n}}
    s.request("send", "POST", "/api/v1/contexts/", body, ok=(201,))


def lock_cycle(s) -> None:
    body = {"resources": [f"bench:res-{s.index}"], "mode": "exclusive", "ttl_seconds": 30}
    lease = s.request("acquire", "POST", "/api/v1/locks/", body, ok=(201,)).json()
    s.request("release", "DELETE", f"/api/v1/locks/{lease['id']}/", {"holder_token": lease["holder_token"]})


def task_cycle(s) -> None:
    s.request("create", "POST", "/api/v1/tasks/", {"role": ROLE, "kind": "bench", "payload": {}}, ok=(201,))
    reply = s.request("claim", "POST", "/api/v1/tasks/claim/", {"ttl_seconds": 60}, ok=(200, 204))
    if reply.status == 204:
        s.count("queue_empty")
        return
    task = reply.json()
    s.request("complete", "POST", f"/api/v1/tasks/{task['id']}/complete/", {"result": {"ok": True}})


# --- setup and the run (parent process, Django configured) --------------------------------------------


def setup(config: BenchConfig) -> list[dict[str, Any]]:
    from .harness import apply_policies, create_agents, reset_database

    reset_database(config)
    apply_policies(POLICIES)
    return create_agents("idem", AGENTS, ROLE)


def _row(case: str, result: LoadResult, unkeyed: LoadResult | None, op: str, unit: str) -> Row:
    main = result.op(op)
    return Row(
        suite="idempotency",
        case=case,
        layout=LAYOUT,
        rate=result.cycle_rate,
        unit=unit,
        p50=main.p50,
        p99=main.p99,
        errors=result.error_count,
        floor="no key" if unkeyed is not None else "",
        floor_rate=unkeyed.cycle_rate if unkeyed is not None else None,
        target_ratio=TARGET_RATIO if unkeyed is not None else None,
        details=op_details(result),
    )


def run(config: BenchConfig) -> list[Row]:
    base_tree = os.environ.get("MEMORYHUB_BENCH_BASE_TREE")
    agents = setup(config)
    trees = {"this code": None, **({"base": Path(base_tree)} if base_tree else {})}
    print(f"\n== idempotency: keyed against unkeyed writes on {', '.join(trees)} ==", flush=True)
    # Each round runs every pair (no key, then key) back to back: the keyed/unkeyed ratio of each
    # round is what is compared, so the host's drift between pairs (it is shared) cancels out.
    ratios: dict[str, list[float]] = {}
    runs: dict[str, list[LoadResult]] = {}
    with ExitStack() as stack:
        hosts = {
            name: stack.enter_context(server(LAYOUT, config, **({"tree": tree} if tree is not None else {})))
            for name, tree in trees.items()
        }
        for round_number in range(config.rounds):
            for family, (scenario, _op, _unit) in FAMILIES.items():
                for tree_name, host in hosts.items():
                    pair = [0.0, 0.0]
                    # Odd rounds run the keyed loop first: whatever the second run of a pair meets
                    # (a larger log, autovacuum after the first's writes) hits both alike.
                    for keys in (False, True) if round_number % 2 == 0 else (True, False):
                        result = run_load(
                            scenario=f"tests.bench.bench_idempotency:{scenario}",
                            agents=agents,
                            hosts=[host],
                            config=config,
                            params={"keys": keys},
                        )
                        runs.setdefault(f"{tree_name}: {family}, {'key' if keys else 'no key'}", []).append(result)
                        pair[keys] = result.cycle_rate
                    ratio = pair[1] / pair[0] if pair[0] else 0.0
                    ratios.setdefault(f"{tree_name}: {family}", []).append(ratio)
                    print(
                        f"  [round {round_number + 1}/{config.rounds}] {tree_name}: {family}: "
                        f"no key {pair[0]:,.1f}/s, key {pair[1]:,.1f}/s, ratio {ratio:.0%}",
                        flush=True,
                    )
    rows: list[Row] = []
    for tree_name in hosts:
        for family, (_scenario, op, unit) in FAMILIES.items():
            unkeyed = _median(runs[f"{tree_name}: {family}, no key"])
            keyed = _median(runs[f"{tree_name}: {family}, key"])
            ratio = statistics.median(ratios[f"{tree_name}: {family}"])
            rows.append(_row(f"{tree_name}: {family}, no key", unkeyed, None, op, unit))
            row = _row(f"{tree_name}: {family}, key", keyed, unkeyed, op, unit)
            # The median of the rounds' ratios, as the floor rate that gives it (see above).
            row.floor_rate = keyed.cycle_rate / ratio if ratio else None
            row.details["round_ratios"] = [round(r, 3) for r in ratios[f"{tree_name}: {family}"]]
            rows.append(row)
    report("idempotency", rows, config, notes={"agents": AGENTS, "layout": LAYOUT, "base_tree": base_tree})
    return rows


def _median(results: list[LoadResult]) -> LoadResult:
    return sorted(results, key=lambda r: r.cycle_rate)[len(results) // 2]
