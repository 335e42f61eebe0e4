"""The embedded server (`make run`): one process, one port, one SQLite file.

REST and the dashboard go through Django's WSGI handler, run in a small pool of threads: one hop from
the event loop per request. Django's ASGI handler, which served them before, hops to a thread for each
signal and for the middleware chain, and under load its requests waited seconds for SQLite's lock
(measured side by side: see the README's Performance section). Websockets go through Channels on the
same event loop, so the in-memory channel layer is shared: an event that a REST write publishes reaches
this process's sockets at once, with no Redis and no second process. The sweepers run here too (no
Celery beat in the embedded default). uvicorn is in front: daphne in front of the same application
did 9-13 % fewer cycles/s in two 3-round runs (and half in one loaded single round).

    python -m memoryhub.embedded [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryhub.settings")
# The pool's threads live as long as the server, so each keeps its SQLite connection (opening one per
# request, with its PRAGMAs, was ~8 % of the server's time: 49.5 -> 57.8 cycles/s when kept, one run).
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "600")

import django

django.setup(set_prefix=False)

from asgiref.sync import async_to_sync, sync_to_async  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.urls import reverse  # noqa: E402

from memoryhub.mcp.asgi import with_mcp  # noqa: E402
from memoryhub.realtime.routing import websocket_urlpatterns  # noqa: E402
from memoryhub.realtime.security import BrowserOriginValidator  # noqa: E402
from memoryhub.settings import env_int  # noqa: E402
from memoryhub.sweepers import InProcessSweeper  # noqa: E402

# Threads serving REST. Python runs one at a time (the GIL) and SQLite lets one writer in, so more
# threads only add switching and queueing inside the process: 2 threads against 4 at 16 agents (inbox
# loop, 3 rounds, same run, quiet host) did the same cycles/s (121-136 against 123-134) with the worst
# p99 56-65 ms against 86-96 ms (and 20-25 against 33-43 ms at 4 agents). Lock requests that wait have
# a pool of their own below.
THREADS = env_int("MEMORYHUB_EMBEDDED_THREADS", 2)
# Lock requests may wait (up to MEMORYHUB_MAX_LOCK_WAIT_SECONDS) holding their thread: they get threads
# of their own, so agents waiting for a lock never take the threads everyone else is served by.
WAIT_THREADS = env_int("MEMORYHUB_EMBEDDED_WAIT_THREADS", 32)


def wsgi_environ(scope: dict[str, Any], body) -> dict[str, Any]:
    """The WSGI environ of an ASGI http scope (what Django's ASGIRequest reads from the scope, spelled
    as PEP 3333 spells it: native strings holding latin-1-decoded bytes)."""
    root_path = scope.get("root_path", "")
    path = scope["path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "REMOTE_ADDR": client[0] if client else "",
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = f"HTTP_{name}"
        if name in environ:
            value = f"{environ[name]}{'; ' if name == 'HTTP_COOKIE' else ','}{value}"
        environ[name] = value
    # A chunked body has no Content-Length, and Django reads none without one: say how much was read.
    environ.setdefault("CONTENT_LENGTH", str(body.tell()))
    body.seek(0)
    return environ


class EmbeddedApplication:
    """ASGI: `http` through Django's WSGI handler in a thread pool, `websocket` through Channels."""

    def __init__(self, *, threads: int = THREADS, wait_threads: int = WAIT_THREADS) -> None:
        self.wsgi = WSGIHandler()
        self.websocket = BrowserOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        self.executors = [
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="memoryhub-rest"),
            ThreadPoolExecutor(max_workers=wait_threads, thread_name_prefix="memoryhub-wait"),
        ]
        # asgiref's wrapper rather than loop.run_in_executor: it tells the thread which loop it serves,
        # so async_to_sync in it (the in-memory layer's publish) runs on this loop, where the sockets'
        # queues live, and not on a loop of its own.
        self.respond, self.respond_waiting = (
            sync_to_async(self._respond, thread_sensitive=False, executor=executor) for executor in self.executors
        )
        self.locks_path = reverse("locks")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def http(self, scope, receive, send) -> None:
        body = await self._read_body(receive)
        if body is None:  # the client went away before it had sent its request
            return
        waits = scope["method"] == "POST" and scope["path"] == self.locks_path
        with body:
            answer = await (self.respond_waiting if waits else self.respond)(wsgi_environ(scope, body), send)
        if answer is not None:
            status, headers, content = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})

    async def _read_body(self, receive):
        """The whole body, in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then on disk (as Django's
        ASGI handler does); the view decides whether it is too big."""
        # Closed by the caller (`with body`), or here when the client has gone.
        body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.close()
                return None
            if message.get("body"):
                body.write(message["body"])
            if not message.get("more_body", False):
                return body

    def _respond(self, environ: dict[str, Any], send) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """In a pool thread: run the request; return a plain response for the loop to send, or send a
        streaming one from here (its generator may read the database through this thread's connection)."""
        started: list[Any] = []
        written: list[bytes] = []  # WSGI's write(): Django never calls it, PEP 3333 requires it

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
            started[:] = [
                int(status.split(" ", 1)[0]),
                [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            ]
            return written.append

        response = self.wsgi(environ, start_response)
        try:
            if not getattr(response, "streaming", False):
                return started[0], started[1], b"".join([*written, *response])
            send_sync = async_to_sync(send)
            send_sync({"type": "http.response.start", "status": started[0], "headers": started[1]})
            for chunk in itertools.chain(written, response):
                if chunk:
                    send_sync({"type": "http.response.body", "body": chunk, "more_body": True})
            send_sync({"type": "http.response.body", "body": b""})
            return None
        finally:
            response.close()  # request_finished: this thread's database connection is closed or kept

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for executor in self.executors:
                    executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return


# /mcp/ (MCP over Streamable HTTP) is an ASGI app of its own, as on daphne (memoryhub.asgi).
application = InProcessSweeper(with_mcp(EmbeddedApplication()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memoryhub.embedded", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="uvicorn")
    args = parser.parse_args(argv)
    from memoryhub.search.embedders import warm_up

    warm_up()  # the embedding model loads while the server starts, not in its first search
    # What is loaded by now (Django, the application, the model) lives as long as the server: frozen,
    # out of the collector's sight, so a full collection scans only what requests have made since.
    gc.collect()
    gc.freeze()
    if args.server == "daphne":
        from daphne.server import Server

        Server(application=application, endpoints=[f"tcp:port={args.port}:interface={args.host}"]).run()
        return
    import uvicorn

    uvicorn.run(
        application,
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        lifespan="on",
        access_log=False,
        log_level=os.environ.get("LOG_LEVEL", "warning").lower(),
    )


if __name__ == "__main__":
    main()
