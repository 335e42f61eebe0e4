"""Issue 16: does a read cost what its result costs, or what the whole store holds?

Two stores of the same shape, built with SQL (INSERT ... SELECT generate_series, secondary indexes
dropped during the load and rebuilt after):

    large: 1,000,000 memories in 10,000 namespaces, 5,000,000 events, 200,000 context entries with
           350,000 receipts, 100,000 queued tasks, one memory with 50,000 versions
    small: the same at 1/1000

Each operation is timed sequentially (one connection, gunicorn sync x2 as in the issue) 7 times after
one untimed call; the report is the p50 at each size, the ratio large/small and the body size at the
large size. Targets: ratio <= 2, p50 <= 50 ms at the large size except exports, history and the
memory page <= 200 KB.

    MEMORYHUB_BENCH_BASE_TREE=/tmp/hub-base   also measure that tree (e.g. `git archive main`) in the same
                                              run: the stores are built on its migrations, measured with
                                              its code, then migrated to this tree and measured again
    MEMORYHUB_BENCH_THIS_TREE=/tmp/hub-head   measure that tree as "this code" (e.g. `git archive HEAD`, so
                                              editing the checkout meanwhile changes nothing measured)
    MEMORYHUB_BENCH_SCALE_EVENTS=N            build N events at the large size instead of 5,000,000
    MEMORYHUB_BENCH_SCALE_REUSE=1             keep stores built by an earlier run (this tree only)

The large store is MEMORYHUB_BENCH_DATABASE_URL's database, the small one the same name + `_small`.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .harness import ROOT, BenchConfig, Row, _admin_dsn, save_results, server, server_environment

RUNS = 7
LAYOUT = "gunicorn-sync2"
HOT_NAMESPACE, HOT_KEY = "hot:0", "doc"
TARGET_RATIO, TARGET_P50_MS, TARGET_PAGE_BYTES = 2.0, 50.0, 200_000
EXPORT_SECONDS = 600  # gunicorn's workers cut it at 30 s; daphne has no limit
POLICIES = {
    "namespaces": [
        {"pattern": "*", "readers": ["everything"], "writers": ["everything"]},
        {"pattern": "ns:0000", "readers": ["everything", "one"], "writers": ["everything", "one"]},
        {"pattern": "inbox:*", "readers": ["everything"], "writers": []},
    ]
}


@dataclass(frozen=True)
class Shape:
    name: str
    namespaces: int
    per_namespace: int
    events: int
    versions: int
    entries: int
    tasks: int

    @property
    def memories(self) -> int:
        return self.namespaces * self.per_namespace


def shapes(quick: bool = False) -> list[Shape]:
    """The two sizes; --quick makes the large one 1/100 (to check the harness)."""
    events = int(os.environ.get("MEMORYHUB_BENCH_SCALE_EVENTS", "5000000"))
    large = Shape("large", 10_000, 100, events, 50_000, 200_000, 100_000)
    if quick:
        large = Shape("large", 100, 100, events // 100, 500, 2_000, 1_000)
    return [Shape("small", 10, 100, max(events // 1000, 100), 50, 200, 100), large]


# --- building ----------------------------------------------------------------------------------------


def _database_url(config: BenchConfig, shape: Shape) -> str:
    name = config.database_name + ("_small" if shape.name == "small" else "")
    return urlsplit(config.database_url)._replace(path=f"/{name}").geturl()


@contextmanager
def _connected(url: str):
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


def _meta(url: str) -> dict[str, Any] | None:
    import psycopg

    try:
        with _connected(url) as db:
            row = db.execute("SELECT document FROM bench_scale_meta").fetchone()
    except psycopg.Error:
        return None
    return json.loads(row[0]) if row else None


def _migrate(url: str, tree: Path, config: BenchConfig) -> None:
    env = {**os.environ, **server_environment(config), "DATABASE_URL": url}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=tree, env=env, check=True)


def _django_on(url: str) -> None:
    """Point this process's Django connection at `url`'s database."""
    from django.db import connections

    connections.close_all()
    connection = connections["default"]
    if hasattr(connection, "close_pool"):  # a pool keeps connections to the old database
        connection.close_pool()
    connection.settings_dict["NAME"] = urlsplit(url).path.lstrip("/")


def _bulk(db, table: str, insert: str, params: dict[str, Any]) -> None:
    """Run `insert` with the table's secondary indexes dropped, then rebuild them (much faster than
    maintaining them row by row); constraint indexes (primary key, unique) stay."""
    indexes = db.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND NOT EXISTS ("
        " SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        [table],
    ).fetchall()
    for name, _ in indexes:
        db.execute(f'DROP INDEX "{name}"')
    db.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    db.execute(insert, params)
    db.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    for _, definition in indexes:
        db.execute(definition)


def build(config: BenchConfig, shape: Shape, tree: Path) -> dict[str, Any]:
    """Drop and recreate the store of `shape`, migrated by `tree`'s code; returns the tokens."""
    url = _database_url(config, shape)
    if os.environ.get("MEMORYHUB_BENCH_SCALE_REUSE") and (meta := _meta(url)) and meta["shape"] == shape.__dict__:
        print(f"  {shape.name}: reusing the store built at {meta['built_at']}", flush=True)
        return meta
    started = time.monotonic()
    name = urlsplit(url).path.lstrip("/")
    _django_on(_admin_dsn(config))  # nothing of ours stays connected to the database dropped here
    with _connected(_admin_dsn(config)) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    _migrate(url, tree, config)
    _django_on(url)
    from . import floor
    from .harness import apply_policies, create_agents

    floor.create_tables()
    apply_policies(POLICIES)
    agents = {
        "all": create_agents("reader-all", 1, "everything")[0],
        "one": create_agents("reader-one", 1, "one")[0],
        "crew": create_agents("crew", 4, "crew"),
    }
    staff_session = _staff_session()
    p = {
        "ns": shape.namespaces,
        "per": shape.per_namespace,
        "memories": shape.memories,
        "events": shape.events,
        "step": shape.events // shape.versions,
        "versions": shape.versions,
        "entries": shape.entries,
        "tasks": shape.tasks,
        "hot_ns": HOT_NAMESPACE,
        "hot_key": HOT_KEY,
        "hot_resource": f"{HOT_NAMESPACE}/{HOT_KEY}",
    }
    with _connected(url) as db:
        db.execute("SET maintenance_work_mem = '256MB'")
        db.execute("SET synchronous_commit = off")
        p["seq0"] = db.execute("SELECT last FROM events_eventsequence").fetchone()[0]
        # Receipts carry their entry's requires_ack since contexts 0003 (a base tree may be older).
        copied_ack = db.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'contexts_receipt' AND column_name = 'requires_ack'"
        ).fetchone()
        # One memory in each namespace slot; the hot memory at the end has `versions` versions.
        _bulk(
            db,
            "memories_memory",
            "INSERT INTO memories_memory (namespace, key, kind, content, version, size_bytes, created_by,"
            " updated_by, created_at, updated_at, expires_at, deleted_at, reason, fencing_token, superseded_by,"
            " verified_by, verified_at)"
            " SELECT 'ns:' || lpad((i / %(per)s)::text, 4, '0'), 'k' || lpad((i %% %(per)s)::text, 3, '0'),"
            " 'semantic', jsonb_build_object('n', i, 'text', 'note number ' || i || ' about topic ' || (i %% 97)),"
            " 1, 60, 'reader-all-0', 'reader-all-0', now() - interval '30 days', now() - interval '30 days',"
            " NULL::timestamptz, NULL::timestamptz, '', 0, '', 'reader-all-0', now() - interval '30 days'"
            " FROM generate_series(0, %(memories)s - 1) AS i"
            " UNION ALL SELECT %(hot_ns)s, %(hot_key)s, 'semantic', jsonb_build_object('v', %(versions)s,"
            " 'text', repeat('x', 150)), %(versions)s, 170, 'reader-all-0', 'reader-all-0',"
            " now() - interval '90 days', now() - interval '1 hour', NULL, NULL, '', 0, '', 'reader-all-0',"
            " now() - interval '1 hour'",
            p,
        )
        # Events over the last 90 days; every `step`-th one is a version of the hot memory.
        _bulk(
            db,
            "events_event",
            "INSERT INTO events_event (seq, type, at, actor_kind, actor_id, actor_role, namespace, resource,"
            " version, summary, before, after, reason, idempotency_key, audience, namespaces)"
            " SELECT %(seq0)s + i,"
            " CASE WHEN i %% %(step)s = 0 THEN 'memory.updated'"
            "  ELSE (ARRAY['memory.updated','memory.updated','memory.updated','memory.created','context.posted',"
            "  'task.created','lock.acquired','memory.updated','memory.deleted','task.completed'])[i %% 10 + 1] END,"
            " now() - interval '1 hour' - (%(events)s - i) * (interval '90 days' / %(events)s),"
            " 'agent', 'crew-' || (i %% 4), 'crew',"
            " CASE WHEN i %% %(step)s = 0 THEN %(hot_ns)s ELSE 'ns:' || lpad(((i::bigint * 7919) %% %(ns)s)::text, 4, '0') END,"
            " CASE WHEN i %% %(step)s = 0 THEN %(hot_resource)s"
            "  ELSE 'ns:' || lpad(((i::bigint * 7919) %% %(ns)s)::text, 4, '0') || '/k' || lpad((i %% %(per)s)::text, 3, '0') END,"
            " CASE WHEN i %% %(step)s = 0 THEN i / %(step)s ELSE 1 + i %% 7 END,"
            " 'bench event', NULL,"
            " CASE WHEN i %% %(step)s = 0 THEN jsonb_build_object('v', i / %(step)s, 'text', repeat('x', 150))"
            "  ELSE jsonb_build_object('n', i) END,"
            " '', '', '[]'::jsonb, NULL FROM generate_series(1, %(events)s) AS i",
            p,
        )
        db.execute("UPDATE events_eventsequence SET last = %(seq0)s + %(events)s WHERE id = 1", p)
        # 3 in 4 entries to one crew agent (one receipt), 1 in 4 to the crew role (four): 1.75 per entry.
        _bulk(
            db,
            "contexts_contextentry",
            "INSERT INTO contexts_contextentry (from_agent_id, from_role, sender, to_role, to_agent_id, namespace,"
            " context_type, subject, content, requires_ack, reply_to_id, thread_id, created_at, expires_at, expired_at)"
            " SELECT 'reader-all-0', 'everything', 'reader-all-0',"
            " CASE WHEN i %% 4 = 0 THEN 'crew' ELSE '' END,"
            " CASE WHEN i %% 4 = 0 THEN NULL ELSE 'crew-' || (i %% 4) END,"
            " CASE WHEN i %% 4 = 0 THEN 'inbox:crew' ELSE 'inbox:agent:crew-' || (i %% 4) END,"
            " 'note', 'entry ' || i, jsonb_build_object('n', i), i %% 3 = 0, NULL, NULL,"
            " now() - interval '1 hour' - (%(entries)s - i) * (interval '30 days' / %(entries)s), NULL, NULL"
            " FROM generate_series(1, %(entries)s) AS i",
            p,
        )
        # Most receipts read and acked long ago; the newest 2 % unread.
        _bulk(
            db,
            "contexts_receipt",
            "INSERT INTO contexts_receipt (entry_id, agent_id, read_at, acked_at, ack_note, entry_expired"
            + (", requires_ack)" if copied_ack else ")")
            + " SELECT e.id, a.id, CASE WHEN e.id > m.top * 0.98 THEN NULL ELSE e.created_at END,"
            " CASE WHEN e.id > m.top * 0.98 THEN NULL ELSE e.created_at END, '', false"
            + (", e.requires_ack" if copied_ack else "")
            + " FROM contexts_contextentry e CROSS JOIN (SELECT max(id) AS top FROM contexts_contextentry) m"
            " JOIN agents_agent a ON a.id = e.to_agent_id OR (e.to_role = 'crew' AND a.role = 'crew')",
            p,
        )
        _bulk(
            db,
            "tasks_task",
            "INSERT INTO tasks_task (role, kind, payload, status, priority, attempts, max_attempts, claimed_by_id,"
            " claimed_at, claim_expires_at, result, error, created_by, idempotency_key, created_at, updated_at,"
            " completed_at, completed_by)"
            " SELECT 'crew', 'job', jsonb_build_object('n', i), 'queued', i %% 3, 0, 3, NULL, NULL, NULL, NULL, '',"
            " 'reader-all-0', '', now() - interval '1 day', now() - interval '1 day', NULL, ''"
            " FROM generate_series(1, %(tasks)s) AS i",
            p,
        )
        if db.execute("SELECT to_regclass('tallies_tally')").fetchone()[0]:
            from memoryhub.tallies.services import tallies_recount

            tallies_recount()  # the loads ran with the triggers that keep the tallies disabled
        db.execute("CREATE TABLE bench_scale_meta (document text)")
        meta = {
            "shape": shape.__dict__,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "agents": agents,
            "staff_session": staff_session,
            "hot_first_at": db.execute("SELECT min(at) FROM events_event WHERE resource = %s", [p["hot_resource"]])
            .fetchone()[0]
            .isoformat(),
        }
        db.execute("INSERT INTO bench_scale_meta VALUES (%s)", [json.dumps(meta)])
        db.execute("VACUUM ANALYZE")
    print(f"  {shape.name}: built in {time.monotonic() - started:.0f}s", flush=True)
    return meta


def _staff_session() -> str:
    """A logged-in staff session for the dashboard pages (its cookie value)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_user("bench-staff", password=None, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


# --- measuring ---------------------------------------------------------------------------------------


def operations(meta: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, who, path): who is an agent key of meta["agents"] or "staff" (the dashboard)."""
    hot = f"{quote(HOT_NAMESPACE)}/{HOT_KEY}"
    as_of = quote(meta["hot_first_at"])
    return [
        ("get by key", "all", "/api/v1/memories/ns:0000/k001/"),
        ("memories/?namespace=ns:0000 (exact)", "all", "/api/v1/memories/?namespace=ns:0000"),
        ("memories/ (no namespace), reads all", "all", "/api/v1/memories/"),
        ("memories/ (no namespace), reads one ns", "one", "/api/v1/memories/"),
        ("memories/?namespace=ns:000*", "all", "/api/v1/memories/?namespace=ns:000*"),
        ("memories/?q=topic", "all", "/api/v1/memories/?q=topic"),
        ("history/ of the hot memory", "all", f"/api/v1/memories/{hot}/history/"),
        ("?version=1 of the hot memory", "all", f"/api/v1/memories/{hot}/?version=1"),
        ("?as_of=<first version> of it", "all", f"/api/v1/memories/{hot}/?as_of={as_of}"),
        ("events/?since=<last-100>", "all", "/api/v1/events/?since={last_minus_100}"),
        ("events/?namespace=ns:000*", "all", "/api/v1/events/?namespace=ns:000*"),
        ("events/?type=task.created, reads one ns", "one", "/api/v1/events/?type=task.created"),
        ("activity/?resource=ns:0001, 7 days", "all", "/api/v1/activity/?resource=ns:0001&window_seconds=604800"),
        ("inbox/ (crew-1)", "crew1", "/api/v1/inbox/"),
        ("tasks/?status=queued", "all", "/api/v1/tasks/?status=queued"),
        ("dashboard /", "staff", "/"),
        ("dashboard /inbox/", "staff", "/inbox/"),
        ("dashboard /memories/", "staff", "/memories/"),
        ("dashboard page of the hot memory", "staff", f"/memories/{hot}/"),
        ("dashboard /events/", "staff", "/events/"),
        ("/metrics", "none", "/metrics"),
    ]


def _headers(meta: dict[str, Any], who: str) -> dict[str, str]:
    if who == "staff":
        return {"Cookie": f"sessionid={meta['staff_session']}"}
    if who == "none":
        return {}
    agent = meta["agents"]["crew"][1] if who == "crew1" else meta["agents"][who]
    return {"Authorization": f"Bearer {agent['token']}"}


def _get(base: str, path: str, headers: dict[str, str], timeout: float = 120) -> tuple[int, int, float, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return 599, 0, (time.perf_counter() - started) * 1000, str(exc).encode()
    finally:
        conn.close()
    return status, len(body), (time.perf_counter() - started) * 1000, body


def _export(base: str, meta: dict[str, Any], lines: int) -> dict[str, Any]:
    """The JSONL export of every event: time to the first `lines` lines and in all (up to
    EXPORT_SECONDS), and whether the stream says it is complete. Read in large chunks, so the reader
    takes little of the CPU the server streams with."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    started = time.perf_counter()
    first = None
    count = 0
    tail = b""
    status = 599
    try:
        conn.request("GET", "/events/export.jsonl", headers=_headers(meta, "staff"))
        response = conn.getresponse()
        status = response.status
        deadline = started + EXPORT_SECONDS
        while time.perf_counter() < deadline:
            chunk = response.read1(1 << 20)
            if not chunk:
                break
            count += chunk.count(b"\n")
            tail = (tail + chunk)[-4096:]
            if first is None and count >= lines:
                first = (time.perf_counter() - started) * 1000
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()
    total = (time.perf_counter() - started) * 1000
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    complete = b'"complete": true' in last or b'"complete":true' in last
    return {"status": status, "lines": count, "first_ms": first, "total_ms": total, "complete": complete}


def measure(base: str, meta: dict[str, Any], url: str) -> dict[str, dict[str, Any]]:
    with _connected(url) as db:
        last = db.execute("SELECT last FROM events_eventsequence").fetchone()[0]
    results: dict[str, dict[str, Any]] = {}
    for name, who, path in operations(meta):
        path = path.format(last_minus_100=max(last - 100, 0))
        headers = _headers(meta, who)
        _get(base, path, headers)
        timings, statuses, size = [], set(), 0
        for _ in range(RUNS):
            status, size, ms, _body = _get(base, path, headers)
            timings.append(ms)
            statuses.add(status)
        results[name] = {"p50": statistics.median(timings), "bytes": size, "status": sorted(statuses)}
        print(f"    {name}: p50 {results[name]['p50']:.1f} ms, {size:,} B, HTTP {sorted(statuses)}", flush=True)
    export = _export(base, meta, 10_000)
    results["export"] = export
    print(f"    export.jsonl: {export}", flush=True)
    return results


def _measure_tree(config: BenchConfig, tree: Path, label: str, metas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    measured = {}
    for shape in shapes(config.quick):
        url = _database_url(config, shape)
        print(f"  {label}, {shape.name}:", flush=True)
        extra = {"DATABASE_URL": url}
        warm = metas[shape.name]["agents"]["all"]["token"]
        config.warm_token = warm
        with server(LAYOUT, config, extra_env=extra, tree=tree) as base:
            measured[shape.name] = measure(base, metas[shape.name], url)
        # Production routes exports to daphne (README): no worker timeout there.
        with server("daphne", config, extra_env=extra, tree=tree) as base:
            export = _export(base, metas[shape.name], 10_000)
        measured[shape.name]["export on daphne"] = export
        print(f"    export.jsonl on daphne: {export}", flush=True)
    return measured


def _rows(label: str, measured: dict[str, Any], names: list[str]) -> list[Row]:
    rows = []
    for name in names:
        small, large = measured["small"][name], measured["large"][name]
        ratio = large["p50"] / small["p50"] if small["p50"] else None
        rows.append(
            Row(
                suite="scale",
                case=f"{label}: {name}",
                layout=LAYOUT,
                rate=ratio or 0.0,
                unit="x large/small",
                p50=large["p50"],
                p99=small["p50"],
                errors=sum(1 for m in (small, large) if m["status"] != [200]),
                details={"small": small, "large": large},
            )
        )
    return rows


def _print_table(results: dict[str, dict[str, Any]], names: list[str]) -> None:
    labels = list(results)
    header = "| operation | " + " | ".join(
        f"{label} small ms | {label} large ms | {label} ratio | {label} large bytes" for label in labels
    )
    print("\n" + header + " |")
    print("|---" * (1 + 4 * len(labels)) + "|")
    for name in names:
        cells = [name]
        for label in labels:
            small, large = results[label]["small"][name], results[label]["large"][name]
            ratio = large["p50"] / small["p50"] if small["p50"] else float("nan")
            flag = "" if large["status"] == [200] else f" (HTTP {large['status']})"
            cells += [f"{small['p50']:.1f}", f"{large['p50']:.1f}{flag}", f"{ratio:.1f}x", f"{large['bytes']:,}"]
        print("| " + " | ".join(cells) + " |")
    for label in labels:
        for size in ("small", "large"):
            print(f"export.jsonl, {label}, {size}: {results[label][size]['export']}")
            print(f"export.jsonl on daphne, {label}, {size}: {results[label][size]['export on daphne']}")


def run(config: BenchConfig) -> list[Row]:
    base_tree = os.environ.get("MEMORYHUB_BENCH_BASE_TREE")
    trees = [("base", Path(base_tree))] if base_tree else []
    trees.append(("this code", Path(os.environ.get("MEMORYHUB_BENCH_THIS_TREE") or ROOT)))
    print(
        f"\n== scale: {', '.join(f'{s.name} {s.memories:,} memories, {s.events:,} events' for s in shapes(config.quick))} =="
    )
    metas = {shape.name: build(config, shape, trees[0][1]) for shape in shapes(config.quick)}
    results: dict[str, dict[str, Any]] = {}
    for label, tree in trees:
        if tree != trees[0][1]:
            for shape in shapes(config.quick):
                print(f"  migrating {shape.name} to {label}", flush=True)
                _migrate(_database_url(config, shape), tree, config)
        results[label] = _measure_tree(config, tree, label, metas)
    names = [name for name, _, _ in operations(metas["small"])]
    _print_table(results, names)
    rows = [row for label in results for row in _rows(label, results[label], names)]
    path = save_results(
        "scale", rows, config, notes={"results": results, "shapes": [s.__dict__ for s in shapes(config.quick)]}
    )
    print(f"\nresults: {path.relative_to(ROOT)}", flush=True)
    return rows
