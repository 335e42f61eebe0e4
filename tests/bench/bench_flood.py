"""Issue 12: one agent flooding the hub must not slow the others down. Target: the victims' p99 with
the flood running is at most 2x their p99 without it, on the same server in the same run.

- victims: 8 agents, each 10 read-modify-write cycles/s through memoryhub's own client (`HubClient`:
  `get`, then `put` with `version=` -> If-Match, and an Idempotency-Key on the write, as the client
  sends on every write), each on its own key; the client's retries are off, so a refusal of a victim
  counts as an error.
- flood: one agent's token on 24 threads, each sending `GET memories/..` back to back (a runaway
  loop), under the default limit (6000/min, so 100/s are served, the rest refused with 429).
- bad-token flood: 24 threads, a new random token on every request (each one a token lookup unless
  the per-address failure limit refuses it first).
- unprotected: the same flood with the limits off, for scale (what the limits are worth).
The flooders run in a load-generator process of their own on the same machine as the server and the
victims: on a 2-core host the flood's client competes with the server for CPU, which a remote
flooder would not.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from .harness import BenchConfig, LoadResult, Row, op_details, report, run_load, run_rounds, server

VICTIMS = 8
VICTIM_CYCLES_PER_SECOND = 10
FLOOD_THREADS = 24
ROLE = "bench"
POLICIES = {"namespaces": [{"pattern": "bench:*", "readers": [ROLE], "writers": [ROLE], "write_mode": "optimistic"}]}
LIMITS_ON = {"MEMORYHUB_RATE_LIMIT": "6000/min", "MEMORYHUB_AUTH_FAILURE_LIMIT": "30/min"}
LIMITS_OFF = {"MEMORYHUB_RATE_LIMIT": "off", "MEMORYHUB_AUTH_FAILURE_LIMIT": "off"}
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


def flood(s) -> None:
    reply = s.request("flood", "GET", "/api/v1/memories/bench:flood/k/", ok=(200, 429))
    s.count("served" if reply.status == 200 else "refused")


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
            scenario=flood_scenario, agents=threads, hosts=[base], config=flood_config, processes=1, started=started
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


def run(config: BenchConfig) -> list[Row]:
    victims, flooder = setup(config)
    layout = config.rest_layout
    print(f"\n== flood on {layout} ==", flush=True)
    with server(layout, config, extra_env=LIMITS_ON) as base, server(layout, config, extra_env=LIMITS_OFF) as open_base:

        def case(flood_scenario: str | None, target: str = base):
            return lambda: _victims_under(target, config, victims, flood_scenario, flooder)

        results = run_rounds(
            config,
            [
                ("victims alone", case(None)),
                ("victims + flood", case("tests.bench.bench_flood:flood")),
                ("victims + bad-token flood", case("tests.bench.bench_flood:bad_token_flood")),
                ("victims alone, limits off", case(None, open_base)),
                ("victims + flood, limits off", case("tests.bench.bench_flood:flood", open_base)),
            ],
        )
    rows: list[Row] = []
    for baseline, floods, protected in (
        ("victims alone", ("victims + flood", "victims + bad-token flood"), True),
        ("victims alone, limits off", ("victims + flood, limits off",), False),
    ):
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
                        floor_rate=floor.op(op).rate,
                        target_p99=TARGET_P99_RATIO * floor.op(op).p99 if protected else None,
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
            "limits": LIMITS_ON,
            "target": f"victim p99 with the flood <= {TARGET_P99_RATIO}x without (same server, same run)",
        },
    )
    return rows


def _row(case: str, layout: str, result: LoadResult, op: str, **extra: Any) -> Row:
    stats = result.op(op)
    return Row(
        suite="flood",
        case=case,
        layout=layout,
        rate=stats.rate,
        unit=f"{op}/s",
        p50=stats.p50,
        p99=stats.p99,
        errors=result.error_count,
        details=op_details(result),
        **extra,
    )
