"""Where the server's CPU goes under a benchmark's load: py-spy samples every server process while the
load generator runs a scenario, then the stacks are summed by function and by area.

    python -m tests.bench.profile memory-read [--layout gunicorn-sync] [--seconds 15] [--idle]

Targets: see TARGETS below. Needs py-spy (`.venv/bin/uv pip install --python .venv/bin/python py-spy`;
a profiling tool, not a project dependency). The raw stacks (collapsed format: speedscope and
flamegraph.pl read it) are kept in bench-results/profile-<target>-<layout>.txt.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from .harness import RESULTS_DIR, config_from_env, configure_django, run_load, server_process

# name -> (setup "module:function" returning agents, scenario, params)
TARGETS = {
    "memory-read": ("tests.bench.bench_memories:setup", "tests.bench.bench_memories:hub_read", {}),
    "memory-rmw": ("tests.bench.bench_memories:setup", "tests.bench.bench_memories:hub_rmw", {}),
    "memory-rmw-hot": ("tests.bench.bench_memories:setup", "tests.bench.bench_memories:hub_rmw", {"hot": True}),
    "floor-read": ("tests.bench.bench_memories:setup", "tests.bench.floor_loops:floor_read", {}),
    "floor-rmw": ("tests.bench.bench_memories:setup", "tests.bench.floor_loops:floor_rmw", {}),
    "inbox-loop": ("tests.bench.bench_inbox:setup_loop_16", "tests.bench.bench_inbox:inbox_cycle", {}),
    "lock-cycle": ("tests.bench.bench_coordination:setup", "tests.bench.bench_coordination:lock_cycle", {}),
    "task-cycle": ("tests.bench.bench_coordination:setup", "tests.bench.bench_coordination:task_cycle", {}),
}

# Areas of self time, matched in order against the innermost frame's file.
AREAS = [
    ("memoryhub/policies code", re.compile(r"^(memoryhub|policies|contexts)/")),
    ("psycopg (driver, incl. waiting)", re.compile(r"psycopg")),
    ("redis client", re.compile(r"redis/")),
    ("channels layer / asgiref", re.compile(r"(channels|channels_redis|asgiref)/")),
    ("Django ORM (query building, model init)", re.compile(r"django/db/")),
    ("DRF (request, auth, throttle, render)", re.compile(r"rest_framework/")),
    ("Django middleware + handlers", re.compile(r"django/(middleware|contrib|core/handlers|utils/deprecation)")),
    ("Django other", re.compile(r"django/")),
    ("server (gunicorn/daphne/twisted/uvicorn)", re.compile(r"(gunicorn|daphne|twisted|uvicorn|autobahn)/")),
    ("stdlib (asyncio, threading, json, ...)", re.compile(r".")),
]
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_stacks(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for raw in path.read_text().splitlines():
        stack, _, count = raw.rpartition(" ")
        if not count.isdigit():
            continue
        frames = []
        for part in stack.split(";"):
            match = FRAME.match(part.strip())
            if match:
                frames.append((match["function"], match["file"] or ""))
        stacks.append((frames, int(count)))
    return stacks


def summarize(path: Path, top: int = 40, *, requests_only: bool = False) -> str:
    """Shares of the samples by area, by function (inclusive) and by leaf. `requests_only` keeps the
    stacks that are inside a request (Django's handler or a websocket consumer), which is what
    matters when idle threads are sampled too (--idle: wall time)."""
    stacks = parse_stacks(path)
    if requests_only:
        stacks = [
            (frames, count)
            for frames, count in stacks
            if any(
                function in ("BaseHandler.get_response", "BaseHandler.get_response_async") or "consumers.py" in file
                for function, file in frames
            )
        ]
    total = sum(count for _, count in stacks) or 1
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for frames, count in stacks:
        seen = set()
        for function, file in frames:
            name = f"{file}:{function}"
            if name not in seen:
                inclusive[name] += count
                seen.add(name)
        if frames:
            function, file = frames[-1]
            own[f"{file}:{function}"] += count
        # Self time by package: the file of the innermost frame decides.
        leaf_file = frames[-1][1] if frames else ""
        for label, pattern in AREAS:
            if pattern.search(leaf_file):
                areas[label] += count
                break
    lines = [
        f"{total} samples" + (" inside requests" if requests_only else "") + "\n",
        "self time by area (the innermost frame's package):",
    ]
    for label, count in areas.most_common():
        lines.append(f"  {count / total:6.1%}  {label}")
    lines.append(
        "\ninclusive (the function or anything it calls), memoryhub/policies/contexts/floor code and key libraries:"
    )
    interesting = re.compile(
        r"^(memoryhub|policies|contexts|tests)/|rest_framework/(views|request|throttling|response|renderers)|django/(db/models/query|db/backends/utils|core/handlers/base|middleware|contrib/sessions)"
    )
    shown = 0
    for name, count in inclusive.most_common():
        if interesting.search(name):
            lines.append(f"  {count / total:6.1%}  {name}")
            shown += 1
            if shown >= top:
                break
    lines.append("\nself time (leaf frames):")
    for name, count in own.most_common(20):
        lines.append(f"  {count / total:6.1%}  {name}")
    return "\n".join(lines)


def py_spy_path() -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/uv pip install --python .venv/bin/python py-spy")
    return spy


def record(pids: list[int], out: Path, seconds: float, *, rate: int = 200, gil: bool = False) -> list[subprocess.Popen]:
    """Start py-spy on each pid (and its children) for `seconds`; raw stacks go to <out>-<pid>.txt.
    Wait for the returned processes, then `merge()` the files."""
    processes = []
    for pid in pids:
        command = [py_spy_path(), "record", "-p", str(pid), "-s", "-d", str(int(seconds)), "-r", str(rate)]
        command += ["-f", "raw", "-o", str(out.with_name(f"{out.stem}-{pid}.txt")), "--nonblocking"]
        command += ["--gil"] if gil else []
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return processes


def merge(parts: list[Path], out: Path) -> Path:
    out.write_text("".join(part.read_text() for part in parts if part.exists()))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile")
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--layout", default="gunicorn-sync")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--idle", action="store_true", help="include waiting threads (wall time, not CPU)")
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL (Python CPU time)")
    parser.add_argument("--rate", type=int, default=200, help="samples per second per process")
    args = parser.parse_args(argv)
    spy = py_spy_path()

    warmup = 3.0
    # Its own database, and Redis left alone: a benchmark may be running meanwhile.
    config = config_from_env(duration=args.seconds + 4, warmup=warmup, database_suffix="_profile", flush_redis=False)
    configure_django(config)
    setup_path, scenario, params = TARGETS[args.target]
    module, _, function = setup_path.partition(":")
    agents = getattr(__import__(module, fromlist=[function]), function)(config)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"profile-{args.target}-{args.layout}.txt"
    with server_process(args.layout, config) as (base, process):
        result: dict = {}
        started = threading.Event()
        load = threading.Thread(
            target=lambda: result.update(
                load=run_load(
                    scenario=scenario, agents=agents, hosts=[base], config=config, params=params, started=started
                )
            )
        )
        load.start()
        started.wait(timeout=120)
        time.sleep(warmup + 1)
        command = [spy, "record", "-p", str(process.pid), "-s", "-d", str(int(args.seconds)), "-r", str(args.rate)]
        command += (
            ["-f", "raw", "-o", str(out), "--nonblocking"]
            + (["--idle"] if args.idle else [])
            + (["--gil"] if args.gil else [])
        )
        subprocess.run(command, check=True, capture_output=True)
        load.join()
    print(f"{args.target} on {args.layout}: {result['load'].cycle_rate:,.1f} cycles/s while profiled")
    print(summarize(out, requests_only=args.idle))
    print(f"\nraw stacks: {out}")


if __name__ == "__main__":
    main()
