"""Run memoryhub's benchmarks against PostgreSQL and print their figures next to floors measured in the
same run.

    python -m tests.bench.run                 # every suite (make bench)
    python -m tests.bench.run memories        # issue 2: memory reads and optimistic writes, per layout
    python -m tests.bench.run inbox           # issue 3a: send / fetch unread / ack loop at N = 4, 16, 64
    python -m tests.bench.run inbox-scale     # issue 3c: inbox fetch latency at 1,000 and 1,000,000 entries
    python -m tests.bench.run stream          # issue 3b: commit -> websocket delivery, 100 sockets, 2 daphnes
    python -m tests.bench.run coordination    # issue 4: lock and task cycles next to raw-SQL and DRF floors
    python -m tests.bench.run overhead        # issue 11: memory reads, this code against a base tree, one run
    python -m tests.bench.run embedded        # issue 17: make run's server against gunicorn sync x4, one SQLite file
    python -m tests.bench.run search          # issue 13: search p50/p99 at 10k and 1M memories, HNSW recall@10
    python -m tests.bench.run search-writes   # issue 13: memory writes/s with the lexical index against without
    python -m tests.bench.run flood           # issue 12: victims' p99 while one agent floods the hub
    python -m tests.bench.run idempotency     # issue 11.4: writes with an Idempotency-Key against without
    python -m tests.bench.run scale           # issue 16: reads at 1/1000 and full size (1 M memories, 5 M events)

Options: --duration S (measured seconds per case), --warmup S, --rounds N (interleave and keep the
median), --layouts a,b (REST layouts: gunicorn-sync, gunicorn-gthread, gunicorn-gthread2, daphne,
uvicorn, embedded, embedded-daphne), --processes N (load-generator processes), --quick (short runs and smaller data sets, to check
the harness). The database is MEMORYHUB_BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/memoryhub_bench; dropped and recreated), Redis
MEMORYHUB_BENCH_REDIS_URL (default redis://127.0.0.1:6379/9; flushed). JSON results go to bench-results/.

Companions: `python -m tests.bench.summary` (markdown tables of the newest results, for the README),
`python -m tests.bench.census` (SQL statements, Redis commands and in-process time per request),
`python -m tests.bench.profile TARGET` (py-spy over the server processes under load).
"""

from __future__ import annotations

import argparse
import importlib
import time

SUITES = {
    "memories": "tests.bench.bench_memories:run",
    "inbox": "tests.bench.bench_inbox:run_loop",
    "inbox-scale": "tests.bench.bench_inbox:run_scale",
    "stream": "tests.bench.bench_stream:run",
    "coordination": "tests.bench.bench_coordination:run",
    "overhead": "tests.bench.bench_overhead:run",
    "embedded": "tests.bench.bench_embedded:run",
    "search": "tests.bench.bench_search:run",
    "search-here": "tests.bench.bench_search:run_here",
    "search-writes": "tests.bench.bench_search:run_writes",
    "flood": "tests.bench.bench_flood:run",
    "idempotency": "tests.bench.bench_idempotency:run",
    "scale": "tests.bench.bench_scale:run",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.run",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("suites", nargs="*", default=["all"], help=f"all, or any of: {', '.join(SUITES)}")
    parser.add_argument("--duration", type=float, help="measured seconds per case (default 10; --quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (default 3; --quick 1)")
    parser.add_argument("--rounds", type=int, help="run each case N times interleaved, report the median")
    parser.add_argument(
        "--layouts", help="comma-separated REST layouts (default gunicorn-sync,gunicorn-gthread,daphne)"
    )
    parser.add_argument("--processes", type=int, help="load-generator processes (default 2)")
    parser.add_argument("--quick", action="store_true", help="short runs, smaller data sets: to check the harness")
    args = parser.parse_args(argv)

    from .harness import config_from_env, configure_django

    config = config_from_env(
        duration=args.duration if args.duration is not None else (3.0 if args.quick else None),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else None),
        rounds=args.rounds,
        processes=args.processes,
        quick=args.quick or None,
        layouts=args.layouts.split(",") if args.layouts else None,
    )
    names = [name for name in SUITES if name != "search-here"] if "all" in args.suites else args.suites
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    from .harness import LAYOUTS

    bad_layouts = [name for name in config.layouts or [] if name not in LAYOUTS]
    if bad_layouts:
        parser.error(f"unknown layout(s) {bad_layouts}; choose from {list(LAYOUTS)}")
    configure_django(config)
    print(
        f"memoryhub benchmarks on {config.database_name} (PostgreSQL), Redis {config.redis_url}: "
        f"{config.duration:g}s measured after {config.warmup:g}s warm-up, {config.rounds} round(s), "
        f"{config.processes} load-generator processes",
        flush=True,
    )
    for name in names:
        module, _, function = SUITES[name].partition(":")
        started = time.monotonic()
        print(f"\n##### {name} #####", flush=True)
        getattr(importlib.import_module(module), function)(config)
        print(f"({name} took {time.monotonic() - started:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
