"""Issue 3b: commit -> websocket delivery latency with 100 connected agents at 2,500 deliveries/s across
2 daphne processes on Redis, counting lost, repeated and out-of-order deliveries.

The producer (this process, Django against the bench database) commits memory writes through the
service at 25/s; each commit's event is published after commit and must reach all 100 sockets
(100 agents of a role that may read the namespace, subscribed with `namespaces=stream:*`), half of
them on each daphne. Latency is the socket's receive time minus the commit time (an on_commit hook
registered before the service's own). The floor, in the same run and the same daphne processes: a
minimal Channels consumer (tests/bench/asgi.py) fed by `group_send` at the same rate.
Target: p99 <= 140 ms with nothing lost.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from contextlib import ExitStack
from typing import Any

from .harness import RESULTS_DIR, BenchConfig, OpStats, Row, report, server_process

# MEMORYHUB_BENCH_PROFILE=1: py-spy samples both daphne processes during the hub phase (CPU, GIL held).
PROFILE = os.environ.get("MEMORYHUB_BENCH_PROFILE", "") not in ("", "0")

SOCKETS = 100
DELIVERIES_PER_S = 2500
TARGET_P99_MS = 140.0
DRAIN_QUIET_SECONDS = 1.5  # after producing, wait until nothing has arrived for this long...
DRAIN_MAX_SECONDS = 20.0  # ...or this long at most; what has not arrived by then counts as lost
NAMESPACE = "stream:bench"
POLICIES = {
    "namespaces": [
        {"pattern": "stream:*", "readers": ["stream"], "writers": ["stream-writer"], "write_mode": "last_write_wins"},
    ],
}


# --- sockets (load-generator processes) ----------------------------------------------------------------


def _socket_worker(targets: list[tuple[int, str, str]], ready, stop, results, progress) -> None:
    try:
        asyncio.run(_sockets(targets, ready, stop, results, progress))
    except BaseException as exc:  # report, never hang the parent
        ready.put(-1)
        results.put({"crash": repr(exc)})


async def _sockets(targets, ready, stop, results, progress) -> None:
    from websockets.asyncio.client import connect

    received: dict[int, list[tuple[int, float]]] = {index: [] for index, _, _ in targets}
    opened: set[int] = set()

    async def one(index: int, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        async with connect(url, additional_headers=headers, ping_interval=None, max_queue=None, open_timeout=60) as ws:
            opened.add(index)
            sink = received[index]
            async for raw in ws:
                at = time.time()
                message = json.loads(raw)
                if message.get("type") == "event":
                    sink.append((message["seq"], at))
                    progress.value += 1  # only this process's event loop writes its own counter

    tasks = [asyncio.create_task(one(index, url, token)) for index, url, token in targets]
    while len(opened) < len(targets):
        for task in tasks:
            if task.done() and task.exception():
                raise task.exception()
        await asyncio.sleep(0.05)
    ready.put(len(targets))
    while not stop.is_set():
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    closed_early = sum(1 for task in tasks if task.done() and not task.cancelled() and task.exception())
    results.put({"received": received, "closed_early": closed_early})


class SocketFleet:
    """SOCKETS websocket clients spread over load-generator processes, connected before producing."""

    def __init__(self, targets: list[tuple[int, str, str]], processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.results, self.stop = context.Queue(), context.Queue(), context.Event()
        self.progress = [context.Value("q", 0, lock=False) for _ in range(processes)]
        self.workers = [
            context.Process(
                target=_socket_worker,
                args=(targets[i::processes], self.ready, self.stop, self.results, self.progress[i]),
            )
            for i in range(processes)
        ]

    def received_so_far(self) -> int:
        return sum(value.value for value in self.progress)

    def drain(self) -> None:
        """Wait until deliveries stop arriving (quiet for a while), within a limit."""
        deadline = time.time() + DRAIN_MAX_SECONDS
        last, quiet_since = self.received_so_far(), time.time()
        while time.time() < deadline:
            time.sleep(0.1)
            now = self.received_so_far()
            if now != last:
                last, quiet_since = now, time.time()
            elif time.time() - quiet_since >= DRAIN_QUIET_SECONDS:
                return

    def __enter__(self) -> SocketFleet:
        for worker in self.workers:
            worker.start()
        for _ in self.workers:
            if self.ready.get(timeout=180) == -1:
                raise RuntimeError(f"a socket worker failed: {self.results.get(timeout=10)}")
        return self

    def collect(self) -> tuple[dict[int, list[tuple[int, float]]], int]:
        self.stop.set()
        received: dict[int, list[tuple[int, float]]] = {}
        closed_early = 0
        for _ in self.workers:
            part = self.results.get(timeout=120)
            if "crash" in part:
                raise RuntimeError(f"a socket worker crashed: {part['crash']}")
            received.update(part["received"])
            closed_early += part["closed_early"]
        return received, closed_early

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()


# --- producers (this process) ---------------------------------------------------------------------------


def _paced(rate: float, seconds: float, offset: float = 0.0):
    start = time.time() + offset
    index = 0
    while True:
        due = start + index / rate
        if due > start + seconds:
            return
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        yield index
        index += 1


# Commits come from this many threads (one commit can take longer than the 40 ms interval on a busy
# host). Like several server workers writing at once, their publishes may reach Redis out of seq
# order, which consumers must (and do) repair from the log.
PRODUCER_THREADS = int(os.environ.get("MEMORYHUB_BENCH_STREAM_PRODUCERS", "4"))


# Commit -> group_send done, in the producer (filled by produce_hub, reported with the hub's figures).
PUBLISH_LAG: dict[str, float] = {}


def produce_hub(actor, rate: float, seconds: float) -> dict[int, float]:
    """Commit memory writes through the service at `rate` per second in total, from a few threads (one
    commit can take longer than the interval on a busy host); seq -> commit time."""
    import threading

    from django.db import connection, transaction

    from memoryhub.events import publisher
    from memoryhub.memories.services import memory_put

    commits: dict[int, float] = {}
    published: dict[int, float] = {}
    original_send_all = publisher._send_all

    async def timed_send_all(layer, messages):
        # The publisher's own coroutine, timed: when each group_send to Redis has completed.
        for message in messages:
            await original_send_all(layer, [message])
            published[message["seq"]] = time.time()

    publisher._send_all = timed_send_all

    def producer(thread: int) -> None:
        try:
            for index in _paced(rate / PRODUCER_THREADS, seconds, offset=thread / rate):
                stamp: list[float] = []
                with transaction.atomic():
                    # Registered before the service's publish hook, so it runs first, right after COMMIT.
                    transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()))
                    result = memory_put(
                        actor=actor,
                        namespace=NAMESPACE,
                        key=f"t{thread}-k{index % 4}",
                        content={"i": index, "note": "stream bench"},
                    )
                commits[result.event.seq] = stamp[0]
        finally:
            connection.close()

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(PRODUCER_THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(1.0)  # the last publishes
    finally:
        publisher._send_all = original_send_all
    lags = sorted((published[seq] - at) * 1000.0 for seq, at in commits.items() if seq in published)
    PUBLISH_LAG.update(p50=OpStats.of(lags, 1).p50, p99=OpStats.of(lags, 1).p99, unpublished=len(commits) - len(lags))
    return commits


def produce_floor(rate: float, seconds: float) -> dict[int, float]:
    """group_send one message of a hub event's size per tick to the floor consumers' group."""
    from channels.layers import get_channel_layer

    from .asgi import FLOOR_GROUP

    async def run() -> dict[int, float]:
        layer = get_channel_layer()
        commits: dict[int, float] = {}
        start = time.time()
        index = 0
        while True:
            due = start + index / rate
            if due > start + seconds:
                return commits
            await asyncio.sleep(max(0.0, due - time.time()))
            seq = index + 1
            event = {
                "seq": seq,
                "type": "memory.updated",
                "namespace": NAMESPACE,
                "resource": f"{NAMESPACE}/k{index % 16}",
                "actor": {"kind": "agent", "id": "ws-writer-0", "role": "stream-writer"},
                "after": {"i": index, "note": "stream bench"},
            }
            commits[seq] = time.time()
            await layer.group_send(FLOOR_GROUP, {"type": "floor.event", "seq": seq, "event": event})
            index += 1

    return asyncio.run(run())


# --- the run ----------------------------------------------------------------------------------------------


def _measure(
    commits: dict[int, float], received: dict[int, list[tuple[int, float]]], window: tuple[float, float]
) -> dict[str, Any]:
    wanted = {seq: at for seq, at in commits.items() if window[0] <= at <= window[1]}
    latencies: list[float] = []
    lost = duplicates = out_of_order = 0
    for deliveries in received.values():
        seen: dict[int, float] = {}
        last = 0
        for seq, at in deliveries:
            if seq in seen:
                duplicates += 1
                continue
            if seq < last:
                out_of_order += 1
            last = max(last, seq)
            seen[seq] = at
        for seq, committed in wanted.items():
            if seq in seen:
                latencies.append((seen[seq] - committed) * 1000.0)
            else:
                lost += 1
    seconds = window[1] - window[0]
    stats = OpStats.of(latencies, seconds)
    return {
        "events_in_window": len(wanted),
        "expected_deliveries": len(wanted) * len(received),
        "delivered": len(latencies),
        "deliveries_per_s": len(latencies) / seconds,
        "lost": lost,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "p50": stats.p50,
        "p90": stats.p90,
        "p99": stats.p99,
        "max": stats.max,
    }


def setup(config: BenchConfig):
    from memoryhub.actors import Actor
    from memoryhub.agents.models import Agent

    from .harness import apply_policies, create_agents, reset_database

    reset_database(config)
    apply_policies(POLICIES)
    agents = create_agents("ws", SOCKETS, "stream")
    writer = create_agents("ws-writer", 1, "stream-writer")[0]
    return agents, Actor.for_agent(Agent.objects.get(id=writer["id"]))


def _run_phase(
    name: str, targets, config: BenchConfig, produce, profile_pids: list[int] | None = None
) -> tuple[dict[str, Any], int]:
    rate = DELIVERIES_PER_S / SOCKETS
    with SocketFleet(targets, config.processes) as fleet:
        started = time.time()
        spies = []
        if profile_pids:
            from .profile import record

            out = RESULTS_DIR / "profile-stream-daphne.txt"
            spies = record(profile_pids, out, config.duration, gil=True)
        commits = produce(rate, config.warmup + config.duration)
        for spy in spies:
            spy.wait()
        if spies:
            from .profile import merge, summarize

            merged = merge([out.with_name(f"{out.stem}-{pid}.txt") for pid in profile_pids], out)
            print(summarize(merged, top=30))
        fleet.drain()
        received, closed_early = fleet.collect()
    window = (started + config.warmup, started + config.warmup + config.duration)
    figures = _measure(commits, received, window)
    figures["commits_per_s"] = figures["events_in_window"] / config.duration
    if produce is not produce_floor and PUBLISH_LAG:
        figures["publish_lag_ms"] = dict(PUBLISH_LAG)
    print(
        f"  {name}: {figures['deliveries_per_s']:,.0f} deliveries/s, p50 {figures['p50']:.1f} ms, "
        f"p99 {figures['p99']:.1f} ms, lost {figures['lost']}, duplicates {figures['duplicates']}, "
        f"out of order {figures['out_of_order']}"
        + (
            f"; commit -> published p50 {figures['publish_lag_ms']['p50']:.1f} ms, "
            f"p99 {figures['publish_lag_ms']['p99']:.1f} ms"
            if "publish_lag_ms" in figures
            else ""
        ),
        flush=True,
    )
    return figures, closed_early


def run(config: BenchConfig) -> list[Row]:
    agents, writer = setup(config)
    rows: list[Row] = []
    print(f"\n== websocket delivery: {SOCKETS} sockets, {DELIVERIES_PER_S:,}/s, 2 daphne processes on Redis ==")
    with ExitStack() as stack:
        started = [stack.enter_context(server_process("daphne-ws", config)) for _ in range(2)]
        ws_bases = [base.replace("http://", "ws://") for base, _ in started]
        pids = [process.pid for _, process in started] if PROFILE else None
        hub_targets = [
            (agent["index"], f"{ws_bases[agent['index'] % 2]}/ws/v1/events/?namespaces=stream:*", agent["token"])
            for agent in agents
        ]
        floor_targets = [(index, f"{ws_bases[index % 2]}/ws/bench/floor/", "") for index in range(SOCKETS)]
        results: dict[str, list[tuple[dict[str, Any], int]]] = {"floor": [], "hub": []}
        for _ in range(config.rounds):
            results["floor"].append(
                _run_phase("floor (group_send -> minimal consumer)", floor_targets, config, produce_floor)
            )
            results["hub"].append(
                _run_phase(
                    "hub (service commit -> /ws/v1/events/)",
                    hub_targets,
                    config,
                    lambda rate, seconds: produce_hub(writer, rate, seconds),
                    profile_pids=pids,
                )
            )
    chosen = {name: sorted(runs, key=lambda r: r[0]["p99"])[len(runs) // 2] for name, runs in results.items()}
    floor_figures = chosen["floor"][0]
    for name, label in (("floor", "floor: group_send -> minimal consumer"), ("hub", "hub: commit -> /ws/v1/events/")):
        figures, closed_early = chosen[name]
        problems = figures["lost"] + figures["duplicates"] + figures["out_of_order"] + closed_early
        rows.append(
            Row(
                suite="stream",
                case=f"{label}, {SOCKETS} sockets",
                layout="daphne x2 + Redis",
                rate=figures["deliveries_per_s"],
                unit="deliveries/s",
                p50=figures["p50"],
                p99=figures["p99"],
                errors=problems,
                floor="floor deliveries/s" if name == "hub" else "",
                floor_rate=floor_figures["deliveries_per_s"] if name == "hub" else None,
                target_p99=TARGET_P99_MS if name == "hub" else None,
                details={**figures, "sockets_closed_early": closed_early},
            )
        )
    report("stream", rows, config, notes={"sockets": SOCKETS, "offered_deliveries_per_s": DELIVERIES_PER_S})
    hub, floor = chosen["hub"][0], floor_figures
    print(
        f"stream: hub p99 {hub['p99']:.1f} ms vs floor p99 {floor['p99']:.1f} ms "
        f"({hub['p99'] / floor['p99']:.1f}x); lost {hub['lost']} (target p99 <= {TARGET_P99_MS:g} ms, nothing lost)",
        flush=True,
    )
    return rows
