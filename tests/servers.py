"""Real server processes for tests that need them (several daphne processes, browsers): started against
the current test database, stopped at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database pytest-django created, for a subprocess to use the same data."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        user = settings.get("USER") or "postgres"
        password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
        host = settings.get("HOST") or "127.0.0.1"
        port = settings.get("PORT") or 5432
        return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"
    return f"sqlite:///{settings['NAME']}"


def redis_url_for_tests() -> str | None:
    """REDIS_URL when set, else MEMORYHUB_TEST_REDIS_URL (a Redis for the tests that need one on a
    SQLite run: pub/sub channels are shared across db numbers, so a shared Redis mixes the events of
    everyone's servers), else a local Redis if one answers (db 14), else None."""
    url = os.environ.get("REDIS_URL") or os.environ.get("MEMORYHUB_TEST_REDIS_URL")
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/14"
    except OSError:
        return None
    return None


@contextmanager
def server(*, kind: str = "daphne", env: dict[str, str] | None = None, port: int | None = None) -> Iterator[str]:
    """Start daphne (ASGI, websockets), gunicorn (WSGI) or the embedded server (`make run`'s: REST,
    websockets and sweepers in one process) on a free port; yield its base URL."""
    port = port or free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": "memoryhub.settings",
        "MEMORYHUB_RATE_LIMIT": "off",
        "MEMORYHUB_AUTH_FAILURE_LIMIT": "off",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    if kind == "daphne":
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "memoryhub.asgi:application"]
    elif kind == "embedded":
        command = [sys.executable, "-m", "memoryhub.embedded", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [sys.executable, "-m", "gunicorn", "memoryhub.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "2"]
    # The server's output goes to a file, not a pipe: nobody reads a pipe while tests run, and a full
    # pipe would block the server on its next log line.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{kind} exited: {log.read().decode(errors='replace')}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start on {base}")
                time.sleep(0.1)
            yield base
        finally:
            stop(process)


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate a server process; kill it if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
