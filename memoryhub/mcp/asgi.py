"""/mcp/ in the hub's ASGI application (daphne): `application = with_mcp(application)`.

Streamable HTTP in stateless mode: every POST carries its own token and needs no session held by one
process, so any daphne process behind the load balancer answers any request. The SDK's session
manager is started on the first request, in the server's event loop (daphne sends no ASGI lifespan
events). A request without a valid agent token is refused before it reaches MCP, in the hub's error
shape (401 `unauthenticated`, 403 `agent_suspended`)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from asgiref.sync import sync_to_async

log = logging.getLogger(__name__)
PATH = "/mcp"


async def _answer(send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": payload})


class McpEndpoint:
    """The MCP server's ASGI app, behind the hub's token check."""

    def __init__(self) -> None:
        self._app: Any = None
        self._manager: Any = None
        self._started: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self._missing = ""

    def _build(self) -> None:
        try:
            from mcp.server.transport_security import TransportSecuritySettings

            from .tools import build_server
        except ImportError as error:
            self._missing = f"MCP over HTTP needs the mcp extra: pip install 'memoryhub[mcp]' ({error})"
            return
        server = build_server()
        # No DNS-rebinding check: it guards servers that trust the browser's ambient credentials;
        # this one takes a bearer token only, which a rebinding page does not have.
        self._app = server.streamable_http_app(
            streamable_http_path=PATH + "/",
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._manager = server.session_manager

    async def _start(self) -> None:
        if self._started is None:
            self._started = asyncio.Event()
            self._runner = asyncio.get_running_loop().create_task(self._run(self._started))
        await self._started.wait()

    async def _run(self, started: asyncio.Event) -> None:
        async with self._manager.run():
            started.set()
            await asyncio.Event().wait()  # for the life of the process

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None and not self._missing:
            self._build()
        if self._missing:
            await _answer(send, 501, {"error": {"code": "not_implemented", "message": self._missing, "details": {}}})
            return
        from memoryhub.errors import HubError

        from .tools import authenticate, bearer_token

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            await sync_to_async(_check, thread_sensitive=False)(authenticate, bearer_token(headers))
        except HubError as error:
            extra = [(b"www-authenticate", b'Bearer realm="memoryhub"')] if error.status == 401 else []
            await _answer(send, error.status, error.as_dict(), extra)
            return
        await self._start()
        if scope["path"] == PATH:
            scope = {**scope, "path": PATH + "/"}
        await self._app(scope, receive, send)


def _check(authenticate, token: str) -> None:
    from django.db import connection

    try:
        authenticate(token)
    finally:
        connection.close()  # see memoryhub.mcp.tools._in_thread


def with_mcp(app):
    """`app` with /mcp/ answered by the MCP server (HTTP only; everything else goes to `app`)."""
    endpoint = McpEndpoint()

    async def router(scope, receive, send):
        if scope["type"] == "http" and (scope["path"] == PATH or scope["path"].startswith(PATH + "/")):
            await endpoint(scope, receive, send)
        else:
            await app(scope, receive, send)

    return router
