"""Fault tests: real services stopped, paused, killed and restarted under load.

They never touch the shared PostgreSQL or Redis: each run starts a private PostgreSQL cluster
(initdb/pg_ctl, as an unprivileged user owning a temporary data directory, on a free port) and private
Redis servers, runs the hub in real server processes against them, and stops everything it started,
by pid. They run where PostgreSQL's server binaries and redis-server are installed, in the suite's
PostgreSQL pass (`DATABASE_URL` on PostgreSQL: CI's second pass), and are marked `fault`.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from django.conf import settings

from tests.servers import ROOT, free_port

PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), "")


def _missing() -> str | None:
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return "fault tests run in the PostgreSQL pass (DATABASE_URL on PostgreSQL)"
    if not PG_BIN or not os.path.exists(f"{PG_BIN}/initdb"):
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if reason and on_postgres and os.environ.get("MEMORYHUB_REQUIRE_FAULT_TESTS") == "true":
        # CI's PostgreSQL pass sets this: a missing tool must fail the run, not skip the fault tests.
        raise pytest.UsageError(f"fault tests required but cannot run: {reason}")
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.fault)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


# --- PostgreSQL ---------------------------------------------------------------------------------


def _as_unprivileged(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


class PrivateCluster:
    """A PostgreSQL cluster of our own: initdb'd in a temporary directory, on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb and pg_ctl refuse to run as root
            self.user = next(name for name in ("postgres", "nobody") if _user_exists(name))
        self.directory = Path(tempfile.mkdtemp(prefix="memoryhub-fault-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run(
            [f"{PG_BIN}/initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory}"
            " -c fsync=on -c max_connections=200 -c shared_buffers=32MB"
        )
        self.options = options

    def _run(self, command: list[str], timeout: float = 60) -> None:
        subprocess.run(
            _as_unprivileged(command, self.user),
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )

    def start(self) -> None:
        self._run([f"{PG_BIN}/pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self.options, "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([f"{PG_BIN}/pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"])

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def destroy(self) -> None:
        with suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="session")
def private_cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@dataclass
class Hub:
    """A database in the private cluster, migrated, with policies and agents: `tokens[agent_id]`."""

    cluster: PrivateCluster
    database: str
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.cluster.url(self.database)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.cluster.connect(self.database) as conn:
            return conn.execute(sql, params).fetchall()

    def assert_log_has_no_seq_gap(self) -> None:
        [(count, low, high)] = self.query("SELECT count(*), min(seq), max(seq) FROM events_event")
        assert (count, low) == (high, 1), f"{count} events with seqs {low}..{high}: a gap"

    def assert_counters_exact(self, namespace: str, *, acked: dict[str, list[int]], failed: dict[str, int]) -> None:
        """Counters `{"n": ...}` incremented with `update()`: `acked[key]` the versions the client was
        told it wrote, `failed[key]` the calls that raised (their answer lost or refused)."""
        for key, versions in acked.items():
            [(content, version)] = self.query(
                "SELECT content, version FROM memories_memory WHERE namespace = %s AND key = %s", (namespace, key)
            )
            logged = [
                row[0]
                for row in self.query(
                    "SELECT version FROM events_event WHERE resource = %s"
                    " AND type IN ('memory.created', 'memory.updated') ORDER BY seq",
                    (f"{namespace}/{key}",),
                )
            ]
            # The state and the log agree: versions 1..N, each once, in order, and n counts the updates.
            assert logged == list(range(1, version + 1)), f"{key}: the log has versions {logged}"
            assert content["n"] == version - 1
            # Every acknowledged increment is one of them, and none was acknowledged twice.
            assert len(set(versions)) == len(versions), f"{key}: a version acknowledged twice"
            assert set(versions) <= set(logged)
            # Increments nobody was told about can only come from calls that failed (answer lost).
            assert len(versions) <= content["n"] <= len(versions) + failed[key]


_databases = iter(range(1, 1000))


@pytest.fixture
def make_hub(private_cluster):
    def make(*, policies: dict, agents: dict[str, str]) -> Hub:
        database = f"hub_{os.getpid()}_{next(_databases)}"
        with private_cluster.connect() as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        hub = Hub(private_cluster, database, {})
        setup = subprocess.run(
            [sys.executable, "-m", "tests.faults.setup_hub"],
            input=json.dumps({"policies": policies, "agents": agents}),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": hub.url, "REDIS_URL": "", "DATABASE_POOL": "false"},
            timeout=120,
        )
        assert setup.returncode == 0, setup.stderr[-3000:]
        hub.tokens = json.loads(setup.stdout.strip().splitlines()[-1])
        return hub

    return make


# --- Redis ----------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own on a free port: paused, killed and started again by the tests."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="memoryhub-fault-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() != b"PONG"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


# --- hub server processes -------------------------------------------------------------------------


@contextmanager
def hub_server(
    hub: Hub, *, kind: str = "daphne", env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real server process on the private database, in its own process group (so a kill -9 takes
    its workers with it); yields its URL and process."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": hub.url,
        "REDIS_URL": "",
        "DJANGO_SETTINGS_MODULE": "memoryhub.settings",
        "MEMORYHUB_RATE_LIMIT": "off",
        "MEMORYHUB_REQUEST_LOG": "false",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    if kind == "daphne":
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "memoryhub.asgi:application"]
    else:
        command = [sys.executable, "-m", "gunicorn", "memoryhub.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "4"]
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed below, after the server has stopped)
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{kind} did not start: {log.read().decode(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        process.log = log  # type: ignore[attr-defined]
        yield base, process
    finally:
        kill_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_group(process, signal.SIGKILL)
            process.wait()
        log.close()


def kill_group(process: subprocess.Popen, sig: int) -> None:
    """Signal the server process and its workers (its own session, started above)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def server_log(process: subprocess.Popen) -> str:
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read().decode(errors="replace")
