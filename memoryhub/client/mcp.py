"""`memoryhub-mcp`: the hub's operations as MCP tools, over stdio, for LLM agents in any MCP host.

Configured by MEMORYHUB_URL and MEMORYHUB_TOKEN (the agent the model acts as). Each tool is one call
into the client; a refusal comes back as a tool error whose text (and structured content) is the hub's
error shape, so the model can read `version_conflict`, `field_not_owned` and the rest and act on them.

    {"mcpServers": {"memoryhub": {"command": "memoryhub-mcp",
      "env": {"MEMORYHUB_URL": "http://127.0.0.1:8000", "MEMORYHUB_TOKEN": "mh_..."}}}}
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from ._base import merge_patch
from .aio import AsyncHubClient
from .errors import HubError

INSTRUCTIONS = """memoryhub is the shared memory and coordination layer of a team of agents.
- Read your inbox first (inbox) and ack entries you have handled (ack).
- Read a memory before changing it; memory_update applies a merge patch and retries on conflicts.
- To find what the team already knows, memory_search (by meaning and words) before writing anew.
- Before acting on a customer or shared resource, call activity: if proceed is false, defer.
- Hold a lock (lock) around writes to locked namespaces and pass its fencing_token; release it after.
- Claim work with claim and finish it with complete; a claim expires if you stop working on it.
- A field owned by another role cannot be changed by you: send that role a 'handoff' entry instead."""


def _plain(value: Any) -> Any:
    """Client objects as JSON: dataclasses by their server answer (`raw`), lists item by item."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        raw = getattr(value, "raw", None)
        return raw if raw else {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return value


def _ok(value: Any, key: str) -> CallToolResult:
    data = _plain(value)
    structured = data if isinstance(data, dict) else {key: data}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(structured, default=str))], structured_content=structured
    )


def _failed(error: HubError) -> CallToolResult:
    shape = error.as_dict()
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(shape, default=str))], structured_content=shape, is_error=True
    )


def _refs(supersedes: list[dict[str, str]]) -> list[tuple[str, str]]:
    try:
        return [(ref["namespace"], ref["key"]) for ref in supersedes]
    except KeyError as missing:
        raise ValueError(f"supersedes: each entry needs namespace and key ({missing} is missing)") from None


async def _call(operation: Callable[[], Awaitable[Any]], key: str = "result") -> CallToolResult:
    """Run one client call; a list answer is returned as {key: [...]}, a refusal as the error shape."""
    try:
        return _ok(await operation(), key)
    except HubError as error:
        return _failed(error)
    except ValueError as error:  # bad arguments caught by the client before any request
        return _failed(HubError(str(error), status=400, code="invalid"))


def build_server(hub: AsyncHubClient | None = None) -> MCPServer:
    """The MCP server over one client (default: from MEMORYHUB_URL / MEMORYHUB_TOKEN)."""
    hub = hub or AsyncHubClient()
    server = MCPServer("memoryhub", instructions=INSTRUCTIONS)

    @server.tool()
    async def inbox(state: str = "unread", context_type: str | None = None, limit: int = 50) -> CallToolResult:
        """Context entries sent to you or your role, oldest first, each with your receipt.
        state: unread (default), unacked or all."""
        return await _call(lambda: hub.inbox(state=state, context_type=context_type, limit=limit), "entries")

    @server.tool()
    async def send(
        context_type: str,
        content: dict[str, Any],
        to_role: str | None = None,
        to_agent: str | None = None,
        subject: str | None = None,
        requires_ack: bool = False,
        ttl_seconds: int | None = None,
        reply_to: int | None = None,
    ) -> CallToolResult:
        """Send a context entry (escalation, handoff, note, ...) to a role or one agent (give exactly one
        of to_role, to_agent). subject: the resource it is about, e.g. customer:acme."""
        return await _call(
            lambda: hub.send(
                context_type,
                content,
                to_role=to_role,
                to_agent=to_agent,
                subject=subject,
                requires_ack=requires_ack,
                ttl=ttl_seconds,
                reply_to=reply_to,
            )
        )

    @server.tool()
    async def ack(entry_id: int, note: str = "") -> CallToolResult:
        """Acknowledge an inbox entry (marks it read too), with an optional note for the sender."""
        return await _call(lambda: hub.ack(entry_id, note=note))

    @server.tool()
    async def memory_get(
        namespace: str, key: str, version: int | None = None, as_of: str | None = None, include_invalid: bool = False
    ) -> CallToolResult:
        """Read a memory: content, version, who updated it and why, and whether it is stale. version
        or as_of (ISO time): the past. include_invalid: also a superseded, expired-validity or archived one."""
        return await _call(
            lambda: hub.get(namespace, key, version=version, as_of=as_of, include_invalid=include_invalid)
        )

    @server.tool()
    async def memory_put(
        namespace: str,
        key: str,
        content: dict[str, Any],
        version: int | None = None,
        reason: str | None = None,
        kind: str | None = None,
        ttl_seconds: int | None = None,
        fencing_token: int | None = None,
        create_only: bool = False,
        supersedes: list[dict[str, str]] | None = None,
        valid_until: str | None = None,
    ) -> CallToolResult:
        """Write a memory's whole content. To change an existing memory pass the version you read
        (a stale one fails with version_conflict and the current state). Locked namespaces need the
        fencing_token of your lock. create_only: fail if it already exists. supersedes: [{namespace,
        key}] of facts this one replaces (kept, out of default reads); valid_until: ISO time the fact
        stops holding."""

        async def put():
            refs = _refs(supersedes or [])
            return await hub.put(
                namespace,
                key,
                content,
                version=version,
                reason=reason,
                kind=kind,
                ttl=ttl_seconds,
                fencing_token=fencing_token,
                create_only=create_only,
                supersedes=refs,
                valid_until=valid_until,
            )

        return await _call(put)

    @server.tool()
    async def memory_verify(namespace: str, key: str, reason: str | None = None) -> CallToolResult:
        """Re-confirm a memory as still true after checking it (a stale one is fresh again): no new
        version, an event naming you."""
        return await _call(lambda: hub.verify(namespace, key, reason=reason))

    @server.tool()
    async def memory_update(
        namespace: str, key: str, patch: dict[str, Any], reason: str | None = None, fencing_token: int | None = None
    ) -> CallToolResult:
        """Change some fields of a memory with a JSON merge patch (null removes a field). Reads the
        current version and retries on conflicts, so no one else's change is lost; creates it if absent."""
        return await _call(
            lambda: hub.update(
                namespace, key, lambda content: merge_patch(content, patch), reason=reason, fencing_token=fencing_token
            )
        )

    @server.tool()
    async def memory_history(namespace: str, key: str) -> CallToolResult:
        """Every version of a memory: who (actor), when, why (reason) and what changed (diff)."""
        return await _call(lambda: hub.history(namespace, key), "versions")

    @server.tool()
    async def memory_search(
        q: str,
        mode: str = "hybrid",
        namespace: list[str] | str | None = None,
        kind: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        cursor: str | None = None,
    ) -> CallToolResult:
        """Find memories you may read by meaning and words, best first (namespace, key, score, content,
        snippet). mode: hybrid (default), lexical (exact words) or semantic (meaning). namespace: globs
        such as code:*. filter: top-level content fields, {"status": "open", "n": {"$gt": 3}}.
        Pass next_cursor as cursor for more; incomplete=true means recent writes may be missing."""
        return await _call(
            lambda: hub.search(q, mode=mode, namespace=namespace, kind=kind, filter=filter, limit=limit, cursor=cursor)
        )

    @server.tool()
    async def lock(
        resources: list[str] | str,
        ttl_seconds: int = 60,
        mode: str = "exclusive",
        wait_seconds: float = 0,
        holder_token: str | None = None,
    ) -> CallToolResult:
        """Lock resources all at once (for a memory in a locked namespace: memory:<namespace>/<key>).
        Returns the lease id, fencing_token and holder_token; it expires after ttl_seconds unless
        released first. Fails with lock_held (and the holders) after waiting up to wait_seconds (max
        30). To lock again what you hold (one more release), pass its holder_token."""
        return await _call(
            lambda: hub.acquire(resources, ttl=ttl_seconds, mode=mode, wait=wait_seconds, holder_token=holder_token)
        )

    @server.tool()
    async def release(lease_id: int, holder_token: str, reason: str = "") -> CallToolResult:
        """Release a lock you hold; holder_token is the one lock returned."""
        return await _call(lambda: hub.release(lease_id, reason=reason, holder_token=holder_token))

    @server.tool()
    async def claim(role: str | None = None, kinds: list[str] | None = None, ttl_seconds: int = 300) -> CallToolResult:
        """Claim the next queued task of your role (optionally of some kinds). {"task": null} when there
        is none. No other agent gets the same task; finish it with complete before ttl_seconds."""

        async def claimed():
            task = await hub.claim(role=role, kinds=kinds, ttl=ttl_seconds)
            return {"task": _plain(task)}

        return await _call(claimed)

    @server.tool()
    async def complete(task_id: int, result: dict[str, Any] | None = None) -> CallToolResult:
        """Complete a task you claimed, with its result (completing again returns the first result)."""
        return await _call(lambda: hub.complete_task(task_id, result))

    @server.tool()
    async def activity(resource: str, window_seconds: int = 300) -> CallToolResult:
        """Before acting on a resource (a namespace like customer:acme, or namespace/key): what others
        did there lately, and proceed / defer_to / reason from the deference rules and human holds."""
        return await _call(lambda: hub.activity(resource, window_seconds=window_seconds))

    return server


def main() -> None:
    build_server().run("stdio")


if __name__ == "__main__":
    main()
