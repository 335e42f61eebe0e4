"""Issue 12: one agent flooding the hub must not slow the others down. Target: the victims' p99 with
the flood running is at most 2x their p99 without it, on the same server in the same run.

- victims: 8 agents, each 10 read-modify-write cycles/s through memoryhub's own client (`HubClient`:
  `get`, then `put` with `version=` -> If-Match, and an Idempotency-Key on the write, as the client
  sends on every write), each on its own key; the client's retries are off, so a refusal of a victim
  counts as an error.
- flood: one agent's token on 24 threads, each sending `GET memories/..` back to back (a runaway
  loop), under the default limit (6000/min: 100/s served, the rest refused with 429) and under
  1500/min (25/s served), each on a server of its own with its own baseline.
- bad-token flood: 24 threads, a new random token on every request (each one a token lookup unless
  the per-address failure limit refuses it first), under the default limits.
- unprotected: the same flood with the limits off, for scale (what the limits are worth).
- server CPU per flood request (the flood alone, CPU time of the server's processes from /proc over
  the requests answered): a refusal next to a served read and to `GET /healthz`, the cheapest
  request this layout serves; the host's other load changes these far less than it changes latencies.
The flooders run in a load-generator process of their own on the same machine as the server and the
victims, at nice 19 (MEMORYHUB_BENCH_FLOOD_NICE=0 to run it at normal priority): on a 2-core host
its 24 Python threads would otherwise take a core from the server, which a remote flooder would not.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from .harness import BenchConfig, LoadResult, Row, op_details, report, run_load, server_process

VICTIMS = 8
VICTIM_CYCLES_PER_SECOND = 10
FLOOD_THREADS = 24
# The flood's load generator runs at this niceness (MEMORYHUB_BENCH_FLOOD_NICE, 0 = not niced): on a
# 2-core host its 24 threads would otherwise take a core from the server, which a flooder elsewhere
# would not.
FLOOD_NICE = int(os.environ.get("MEMORYHUB_BENCH_FLOOD_NICE", "19"))
ROLE = "bench"
POLICIES = {"namespaces": [{"pattern": "bench:*", "readers": [ROLE], "writers": [ROLE], "write_mode": "optimistic"}]}
# One server each. The victims send 20 requests/s each, under every limit here.
LIMITS = {
    "default": {"MEMORYHUB_RATE_LIMIT": "6000/min", "MEMORYHUB_AUTH_FAILURE_LIMIT": "30/min"},
    "tight": {"MEMORYHUB_RATE_LIMIT": "1500/min", "MEMORYHUB_AUTH_FAILURE_LIMIT": "30/min"},
    "off": {"MEMORYHUB_RATE_LIMIT": "off", "MEMORYHUB_AUTH_FAILURE_LIMIT": "off"},
}
LABELS = {"default": "6000/min (default)", "tight": "1500/min", "off": "limits off"}
TARGET_P99_RATIO = 2.0


# --- load (runs in the load-generator processes) -------------------------------------------------------


def victim_init(s) -> None:
    from memoryhub.client import HubClient
    from memoryhub.client._base import Retry

    s.state["hub"] = HubClient(f"http://{s.host}:{s.port}", token=s.agent["token"], retry=Retry(attempts=1))
    s.state["next"] = time.monotonic()


def victim(s) -> None:
    """One read-modify-write through the client, paced to VICTIM_CYCLES_PER_SECOND."""
    hub, key = s.state["hub"], f"k{s.index}"
    memory = s.timed("get", lambda: hub.get("bench:victims", key))
    s.timed("put", lambda: hub.put("bench:victims", key, {"n": memory.version}, version=memory.version))
    s.state["next"] = max(s.state["next"] + 1 / VICTIM_CYCLES_PER_SECOND, time.monotonic())
    time.sleep(max(0.0, s.state["next"] - time.monotonic()))


_niced = False


def flood_init(s) -> None:
    """The flood's load generator yields the CPU to the server and the victims (nice), as a flooder
    on another machine would not take this one's; it still floods with whatever CPU is left."""
    global _niced
    if not _niced and s.params.get("nice"):
        os.nice(s.params["nice"])
        _niced = True


def flood(s) -> None:
    reply = s.request("flood", "GET", "/api/v1/memories/bench:flood/k/", ok=(200, 429))
    s.count("served" if reply.status == 200 else "refused")


def healthz_flood(s) -> None:
    """The floor of a request on this layout: the server, Django's handler and the cheapest view."""
    s.request("flood", "GET", "/healthz", ok=(200,))
    s.count("served")


def bad_token_flood(s) -> None:
    reply = s.request(
        "flood",
        "GET",
        "/api/v1/memories/bench:flood/k/",
        headers={"Authorization": f"Bearer mh_{uuid.uuid4().hex}"},
        ok=(401, 429),
    )
    s.count("unauthenticated" if reply.status == 401 else "refused")


# --- setup and the run (parent process, Django configured) --------------------------------------------


def setup(config: BenchConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from memoryhub.actors import SYSTEM
    from memoryhub.memories.services import memory_put

    from .harness import apply_policies, create_agents, reset_database

    reset_database(config)
    apply_policies(POLICIES)
    victims = create_agents("victim", VICTIMS, ROLE)
    [flooder] = create_agents("flooder", 1, ROLE)
    for index in range(VICTIMS):
        memory_put(actor=SYSTEM, namespace="bench:victims", key=f"k{index}", content={"n": 0})
    memory_put(actor=SYSTEM, namespace="bench:flood", key="k", content={"n": 0})
    return victims, flooder


def _victims_under(base: str, config: BenchConfig, victims, flood_scenario: str | None, flooder) -> LoadResult:
    """The victims' load, alone or while FLOOD_THREADS flood the same server from another process."""

    def victims_run() -> LoadResult:
        return run_load(
            scenario="tests.bench.bench_flood:victim",
            init="tests.bench.bench_flood:victim_init",
            agents=victims,
            hosts=[base],
            config=config,
            processes=1,
        )

    if flood_scenario is None:
        return victims_run()
    # The flood covers the victims' start-up, warm-up and measurement, and is at full speed first.
    flood_config = replace(config, warmup=0.0, duration=config.warmup + config.duration + 8.0)
    threads = [{**flooder, "index": index} for index in range(FLOOD_THREADS)]
    started, flood_result = threading.Event(), {}

    def flood_run() -> None:
        flood_result["result"] = run_load(
            scenario=flood_scenario,
            init="tests.bench.bench_flood:flood_init",
            agents=threads,
            hosts=[base],
            config=flood_config,
            processes=1,
            started=started,
            params={"nice": FLOOD_NICE},
        )

    thread = threading.Thread(target=flood_run)
    thread.start()
    started.wait(timeout=120)
    time.sleep(1.0)
    result = victims_run()
    thread.join()
    flood = flood_result["result"]
    result.counters.update({f"flood_{name}_per_s": round(n / flood.duration) for name, n in flood.counters.items()})
    result.counters["flood_errors"] = flood.error_count
    return result


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a server process and its children (gunicorn's workers), from /proc."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        pids = [pid, *(int(child) for child in children.read().split())]
    ticks = 0
    for each in pids:
        with open(f"/proc/{each}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _server_cpu_per_request(
    base: str, pid: int, config: BenchConfig, scenario: str, flooder
) -> tuple[float, LoadResult]:
    """The flood alone, and the server's CPU per flood request (microseconds): what a request costs
    the server whoever sends it, whatever share of the CPU the host's other load leaves it."""
    threads = [{**flooder, "index": index} for index in range(FLOOD_THREADS)]
    before = _tree_cpu_seconds(pid)
    result = run_load(
        scenario=scenario,
        init="tests.bench.bench_flood:flood_init",
        agents=threads,
        hosts=[base],
        config=replace(config, warmup=0.0),
        processes=1,
        params={"nice": FLOOD_NICE},
    )
    requests = sum(result.counters.values())
    return (_tree_cpu_seconds(pid) - before) / max(requests, 1) * 1e6, result


def run(config: BenchConfig) -> list[Row]:
    victims, flooder = setup(config)
    layout = config.rest_layout
    print(f"\n== flood on {layout} ==", flush=True)
    with (
        server_process(layout, config, extra_env=LIMITS["default"]) as (default, default_process),
        server_process(layout, config, extra_env=LIMITS["tight"]) as (tight, tight_process),
        server_process(layout, config, extra_env=LIMITS["off"]) as (unlimited, unlimited_process),
    ):
        bases = {"default": default, "tight": tight, "off": unlimited}
        pids = {"default": default_process.pid, "tight": tight_process.pid, "off": unlimited_process.pid}

        def case(limits: str, flood_scenario: str | None):
            return lambda: _victims_under(bases[limits], config, victims, flood_scenario, flooder)

        cases = []
        for limits in LIMITS:
            cases.append((f"victims alone, {LABELS[limits]}", case(limits, None)))
            cases.append((f"victims + flood, {LABELS[limits]}", case(limits, "tests.bench.bench_flood:flood")))
            if limits == "default":
                cases.append(
                    (
                        f"victims + bad-token flood, {LABELS[limits]}",
                        case(limits, "tests.bench.bench_flood:bad_token_flood"),
                    )
                )
        # Interleaved rounds; each figure below is the median over the rounds of that figure (the
        # victims are paced, so rounds do not differ by rate as run_rounds' median assumes).
        results: dict[str, list[LoadResult]] = {name: [] for name, _ in cases}
        for round_number in range(config.rounds):
            for name, run_case in cases:
                results[name].append(result := run_case())
                label = f"[round {round_number + 1}/{config.rounds}] " if config.rounds > 1 else ""
                print(
                    f"  {label}{name}: put p99 {result.op('put').p99:.1f} ms, errors {result.error_count}", flush=True
                )
        costs = []
        for name, limits, scenario in (
            ("refused: bad token, failing address", "default", "tests.bench.bench_flood:bad_token_flood"),
            ("refused: over its rate (1500/min, 1-2 % served)", "tight", "tests.bench.bench_flood:flood"),
            ("served: memory GET (limits off)", "off", "tests.bench.bench_flood:flood"),
            ("floor: GET /healthz", "off", "tests.bench.bench_flood:healthz_flood"),
        ):
            micros, flood_only = _server_cpu_per_request(bases[limits], pids[limits], config, scenario, flooder)
            print(f"  server CPU per flood request, {name}: {micros:.0f} us", flush=True)
            costs.append((name, micros, flood_only))
    rows: list[Row] = []
    for limits in LIMITS:
        baseline = f"victims alone, {LABELS[limits]}"
        floods = [name for name in results if name.endswith(LABELS[limits]) and name != baseline]
        floor = results[baseline]
        for op in ("get", "put"):
            rows.append(_row(f"{baseline}: {op}", layout, floor, op))
            for name in floods:
                rows.append(
                    _row(
                        f"{name}: {op}",
                        layout,
                        results[name],
                        op,
                        floor=baseline,
                        floor_rate=_median(r.op(op).rate for r in floor),
                        target_p99=TARGET_P99_RATIO * _median(r.op(op).p99 for r in floor) if limits != "off" else None,
                    )
                )
    for name, micros, flood_only in costs:
        stats = flood_only.op("flood")
        rows.append(
            Row(
                suite="flood",
                case=f"server CPU per flood request, {name}",
                layout=layout,
                rate=micros,
                unit="us CPU/req",
                p50=stats.p50,
                p99=stats.p99,
                errors=flood_only.error_count,
                details={**op_details(flood_only), "flood_requests_per_s": round(stats.rate)},
            )
        )
    report(
        "flood",
        rows,
        config,
        notes={
            "victims": VICTIMS,
            "victim_cycles_per_s": VICTIM_CYCLES_PER_SECOND,
            "flood_threads": FLOOD_THREADS,
            "flood_load_generator_nice": FLOOD_NICE,
            "limits": LIMITS,
            "target": f"victim p99 with the flood <= {TARGET_P99_RATIO}x without (same server, same run)",
        },
    )
    return rows


def _median(values) -> float:
    return statistics.median(list(values))


def _row(case: str, layout: str, results: list[LoadResult], op: str, **extra: Any) -> Row:
    """Medians over the rounds; the details are those of the round with the median p99."""
    by_p99 = sorted(results, key=lambda r: r.op(op).p99)
    return Row(
        suite="flood",
        case=case,
        layout=layout,
        rate=_median(r.op(op).rate for r in results),
        unit=f"{op}/s",
        p50=_median(r.op(op).p50 for r in results),
        p99=_median(r.op(op).p99 for r in results),
        errors=sum(r.error_count for r in results),
        details={**op_details(by_p99[len(by_p99) // 2]), "p99_by_round": [round(r.op(op).p99, 1) for r in results]},
        **extra,
    )
