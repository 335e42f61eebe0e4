"""The hub's MCP tools and resources, over the services and selectors (never over HTTP).

Each call runs in a worker thread (the ORM is synchronous) inside the same per-request scopes a REST
request has (policies and holds as of the call's start), authenticated anew from the bearer token, so
a suspended agent's next call is refused. Refusals are tool errors whose structured content is the
hub's error shape, `{"error": {"code", "message", "details", "status"}}`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from rest_framework import serializers as drf

from contexts import services as contexts
from contexts.api import AckInput, SendInput
from contexts.selectors import entry_to_dict, inbox_list, receipt_to_dict
from memoryhub.activity.selectors import MAX_WINDOW_SECONDS, activity_for
from memoryhub.actors import Actor
from memoryhub.agents.authentication import agent_for_token
from memoryhub.agents.services import agent_touch
from memoryhub.api.parsers import check_value
from memoryhub.context import Caller
from memoryhub.errors import AgentSuspended, HubError, Invalid, Unauthenticated
from memoryhub.events.selectors import events_visible, last_seq
from memoryhub.locks import services as locks
from memoryhub.locks.api import HeartbeatInput, LockInput, ReleaseInput
from memoryhub.locks.selectors import lease_to_dict
from memoryhub.memories import selectors as memory_selectors
from memoryhub.memories import services as memories
from memoryhub.memories.api import MemoryDeleteInput, MemoryPatchInput, MemoryPutInput, VerifyInput
from memoryhub.memories.selectors import memory_to_dict
from memoryhub.search.selectors import memories_search
from memoryhub.tasks import services as tasks
from memoryhub.tasks.api import TaskClaimInput, TaskCompleteInput, TaskFailInput, TaskHeartbeatInput
from memoryhub.tasks.selectors import task_to_dict

log = logging.getLogger(__name__)

INSTRUCTIONS = """memoryhub is the shared memory and coordination layer of a team of agents.
- Read your inbox first (inbox) and ack entries you have handled (ack).
- Read a memory before changing it and pass its version to memory_put / memory_patch: a stale
  version fails with version_conflict and the current state, so no one else's change is lost.
- Before acting on a customer or shared resource, call activity: if proceed is false, defer.
- Hold a lock (lock) around writes to locked namespaces, pass its fencing_token, heartbeat it while
  you work (lock_heartbeat) and release it after, both with the holder_token lock returned.
- Claim work with claim and finish it with complete (or fail); a claim expires if you stop.
- A field owned by another role cannot be changed by you: send that role a 'handoff' entry instead."""


class ServerError(HubError):
    status, code, default_message = 500, "server_error", "Internal server error."


def bearer_token(headers: Any) -> str:
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(token: str) -> Caller:
    """The agent behind a token and its request context, as the REST API's BearerTokenAuthentication
    decides them: one tool call is one request."""
    found = agent_for_token(token) if token else None
    if found is None:
        raise Unauthenticated("Unknown or revoked token." if token else "Send Authorization: Bearer <agent token>.")
    agent, caller = found
    if agent.is_suspended:
        raise AgentSuspended()
    agent_touch(agent=agent)
    return caller


def validated(serializer_class: type[drf.Serializer], data: dict[str, Any]) -> dict[str, Any]:
    """Arguments checked as a REST body is: storable strings at a bounded depth (the strict parser's
    rule), then the REST API's own input serializer (lengths, ranges)."""
    check_value(data, max_depth=settings.MEMORYHUB_MAX_JSON_DEPTH)
    serializer = serializer_class(data={k: v for k, v in data.items() if v is not None})
    if not serializer.is_valid():
        errors = {field: [str(e) for e in problems] for field, problems in serializer.errors.items()}
        field, problems = next(iter(errors.items()))
        raise Invalid(f"{field}: {problems[0]}", **errors)
    return dict(serializer.validated_data)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _result(value: Any, key: str) -> CallToolResult:
    data = _json(value)
    structured = data if isinstance(data, dict) else {key: data}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(structured))], structured_content=structured
    )


def _refusal(error: HubError) -> CallToolResult:
    shape = error.as_dict()
    shape["error"]["status"] = error.status
    shape = _json(shape)
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(shape))], structured_content=shape, is_error=True
    )


def _in_thread(token: str, operation: Callable[[Actor], Any]) -> Any:
    try:
        return operation(authenticate(token))
    finally:
        # As a REST request under daphne (a thread of its own, its connection gone with it): a
        # connection kept by this pool thread could keep an old SQLite read snapshot open.
        connection.close()


async def call(ctx: Context, operation: Callable[[Actor], Any], key: str = "result") -> CallToolResult:
    """Run `operation(actor)` for the token of the HTTP request this tool call came in."""
    request = ctx.request_context.request
    token = bearer_token(request.headers) if request is not None else ""
    try:
        value = await sync_to_async(_in_thread, thread_sensitive=False)(token, operation)
    except HubError as error:
        return _refusal(error)
    except Exception:  # a bug: answered in the error shape, as REST answers a 500
        log.exception("MCP tool call failed")
        return _refusal(ServerError())
    return _result(value, key)


def _written(result) -> dict[str, Any]:
    # As REST answers: a writer that may not read the namespace gets no content.
    body = {**memory_to_dict(result.memory, readable=result.readable), "seq": result.event.seq}
    if result.memory.deleted_at is not None and result.readable:
        body["content"] = None
    return body


def build_server() -> MCPServer:
    server = MCPServer("memoryhub", instructions=INSTRUCTIONS)

    # --- memories --------------------------------------------------------------------------------

    @server.tool()
    async def memory_get(
        ctx: Context,
        namespace: str,
        key: str,
        version: int | None = None,
        as_of: str | None = None,
        include_invalid: bool = False,
    ) -> CallToolResult:
        """Read a memory: content, version, who updated it and why, and whether it is stale. version
        or as_of (ISO time): the past. include_invalid: also a superseded, expired-validity or archived one."""

        def get(actor: Actor):
            when = None
            if as_of:
                from django.utils.dateparse import parse_datetime

                when = parse_datetime(as_of)
                if when is None or when.tzinfo is None:
                    raise Invalid("as_of must be an ISO 8601 time with a timezone", as_of=["not a time"])
            return memory_selectors.memory_get(
                actor=actor,
                namespace=namespace,
                key=key,
                version=version,
                as_of=when,
                include_invalid=include_invalid,
            )

        return await call(ctx, get)

    @server.tool()
    async def memory_put(
        ctx: Context,
        namespace: str,
        key: str,
        content: dict[str, Any],
        version: int | None = None,
        create_only: bool = False,
        reason: str = "",
        kind: str | None = None,
        ttl_seconds: int | None = None,
        fencing_token: int | None = None,
        supersedes: list[dict[str, str]] | None = None,
        valid_until: str | None = None,
    ) -> CallToolResult:
        """Write a memory's whole content. To change an existing memory pass the version you read (a
        stale one fails with version_conflict and the current state). create_only: only if absent.
        Locked namespaces need the fencing_token of your lock on memory:<namespace>/<key>.
        supersedes: [{namespace, key}] of facts this one replaces (kept, out of default reads);
        valid_until: ISO time the fact stops holding."""

        def put(actor: Actor):
            fields: dict[str, Any] = {"content": content, "reason": reason, "kind": kind, "ttl_seconds": ttl_seconds}
            if supersedes is not None:
                fields["supersedes"] = supersedes
            if valid_until is not None:
                fields["valid_until"] = valid_until
            data = validated(MemoryPutInput, fields)
            return _written(
                memories.memory_put(
                    actor=actor,
                    namespace=namespace,
                    key=key,
                    content=data["content"],
                    kind=data.get("kind"),
                    ttl_seconds=data.get("ttl_seconds"),
                    reason=data["reason"],
                    valid_until=data.get("valid_until"),
                    supersedes=[(ref["namespace"], ref["key"]) for ref in data.get("supersedes", [])],
                    if_match=version,
                    if_none_match=create_only,
                    fencing_token=fencing_token,
                )
            )

        return await call(ctx, put)

    @server.tool()
    async def memory_verify(ctx: Context, namespace: str, key: str, reason: str = "") -> CallToolResult:
        """Re-confirm a memory as still true after checking it (a stale one is fresh again): no new
        version, an event naming you."""

        def verify(actor: Actor):
            data = validated(VerifyInput, {"reason": reason})
            return _written(memories.memory_verify(actor=actor, namespace=namespace, key=key, reason=data["reason"]))

        return await call(ctx, verify)

    @server.tool()
    async def memory_patch(
        ctx: Context,
        namespace: str,
        key: str,
        patch: dict[str, Any],
        version: int | None = None,
        reason: str = "",
        fencing_token: int | None = None,
    ) -> CallToolResult:
        """Change some fields with a JSON merge patch (null removes a field), checked against field
        ownership. Pass the version you read where the namespace is optimistic."""

        def patched(actor: Actor):
            data = validated(MemoryPatchInput, {"content": patch, "reason": reason})
            return _written(
                memories.memory_patch(
                    actor=actor,
                    namespace=namespace,
                    key=key,
                    patch=data["content"],
                    reason=data["reason"],
                    if_match=version,
                    fencing_token=fencing_token,
                )
            )

        return await call(ctx, patched)

    @server.tool()
    async def memory_delete(
        ctx: Context,
        namespace: str,
        key: str,
        version: int | None = None,
        reason: str = "",
        fencing_token: int | None = None,
    ) -> CallToolResult:
        """Delete a memory (its history stays). Pass the version you read where the namespace is optimistic."""

        def delete(actor: Actor):
            data = validated(MemoryDeleteInput, {"reason": reason})
            return _written(
                memories.memory_delete(
                    actor=actor,
                    namespace=namespace,
                    key=key,
                    reason=data["reason"],
                    if_match=version,
                    fencing_token=fencing_token,
                )
            )

        return await call(ctx, delete)

    @server.tool()
    async def memory_search(
        ctx: Context,
        query: str,
        mode: str = "hybrid",
        namespace: str | None = None,
        kind: str | None = None,
        updated_by: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        cursor: str | None = None,
    ) -> CallToolResult:
        """Find the memories you may read that are relevant to `query`, best first: mode hybrid (words
        and meaning), lexical (words) or semantic (meaning); namespace a glob such as customer:*;
        filter on top-level content fields ({"status": "open", "n": {"$gt": 3}}); next_cursor pages on."""

        def found(actor: Actor):
            check_value(
                {"query": query, "filter": filter, "cursor": cursor}, max_depth=settings.MEMORYHUB_MAX_JSON_DEPTH
            )
            return memories_search(
                actor=actor,
                q=query,
                mode=mode,
                namespaces=[namespace] if namespace else None,
                kind=kind,
                updated_by=updated_by,
                filter=filter,
                limit=limit,
                cursor=cursor,
            ).as_dict()

        return await call(ctx, found)

    @server.tool()
    async def memory_history(
        ctx: Context, namespace: str, key: str, limit: int = memory_selectors.HISTORY_PAGE, cursor: str | None = None
    ) -> CallToolResult:
        """A page of a memory's versions, newest first: who (actor), when, why (reason) and what changed
        (diff). Pass `next` back as `cursor` for the older ones."""

        def history(actor: Actor) -> dict[str, Any]:
            versions, following = memory_selectors.memory_history(
                actor=actor,
                namespace=namespace,
                key=key,
                limit=min(max(limit, 1), memory_selectors.MAX_HISTORY_PAGE),
                cursor=cursor,
            )
            return {"versions": versions, "next": following}

        return await call(ctx, history)

    # --- the inbox -------------------------------------------------------------------------------

    @server.tool()
    async def send(
        ctx: Context,
        context_type: str,
        content: dict[str, Any],
        to_role: str | None = None,
        to_agent: str | None = None,
        subject: str = "",
        requires_ack: bool = False,
        ttl_seconds: int | None = None,
        reply_to: int | None = None,
    ) -> CallToolResult:
        """Send a context entry (escalation, handoff, note, ...) to a role or one agent (exactly one of
        to_role, to_agent). subject: the resource it is about, e.g. customer:acme."""

        def sent(actor: Actor):
            data = validated(
                SendInput,
                {
                    "context_type": context_type,
                    "content": content,
                    "to_role": to_role,
                    "to_agent": to_agent,
                    "subject": subject,
                    "requires_ack": requires_ack,
                    "ttl_seconds": ttl_seconds,
                    "reply_to": reply_to,
                },
            )
            entry, event = contexts.context_send(actor=actor, **data)
            return {**entry_to_dict(entry), "seq": event.seq}

        return await call(ctx, sent)

    @server.tool()
    async def inbox(
        ctx: Context, state: str = "unread", context_type: str | None = None, since: int = 0, limit: int = 50
    ) -> CallToolResult:
        """Context entries sent to you or your role, oldest first, each with your receipt.
        state: unread (default), unacked or all. Listing marks nothing read."""
        limit = min(max(limit, 1), 500)
        return await call(
            ctx,
            lambda actor: inbox_list(
                agent_id=actor.id, state=state, context_type=context_type, since=max(since, 0), limit=limit
            ),
            "entries",
        )

    @server.tool()
    async def ack(ctx: Context, entry_id: int, note: str = "") -> CallToolResult:
        """Acknowledge an inbox entry (marks it read too), with an optional note for the sender."""

        def acked(actor: Actor):
            data = validated(AckInput, {"note": note})
            receipt, event = contexts.context_ack(actor=actor, entry_id=entry_id, note=data["note"])
            return {**receipt_to_dict(receipt), "seq": event.seq if event else None}

        return await call(ctx, acked)

    # --- locks -----------------------------------------------------------------------------------

    @server.tool()
    async def lock(
        ctx: Context,
        resources: list[str],
        ttl_seconds: int = 60,
        mode: str = "exclusive",
        wait_seconds: float = 0,
        holder_token: str | None = None,
    ) -> CallToolResult:
        """Lock resources all at once (for a memory in a locked namespace: memory:<namespace>/<key>).
        Returns the lease id, its fencing_token and its holder_token; it expires after ttl_seconds
        unless you heartbeat it (lock_heartbeat) or release it. lock_held (with the holders) after
        waiting up to wait_seconds. To lock again what you hold (re-entry, one more release), pass its
        holder_token: without it your own lease counts as another holder's."""

        def locked(actor: Actor):
            fields = {"resources": resources, "ttl_seconds": ttl_seconds, "mode": mode, "wait_seconds": wait_seconds}
            data = validated(LockInput, fields | ({"holder_token": holder_token} if holder_token is not None else {}))
            grant = locks.lock_acquire(actor=actor, **data)
            return {
                **lease_to_dict(grant.lease),
                "seq": grant.seq,
                "reentered": grant.reentered,
                "holder_token": grant.holder_token,
            }

        return await call(ctx, locked)

    @server.tool()
    async def lock_heartbeat(
        ctx: Context, lease_id: int, holder_token: str, ttl_seconds: int | None = None
    ) -> CallToolResult:
        """Extend a lease you hold to now + ttl_seconds (its own ttl by default); holder_token is the
        one lock returned."""

        def beat(actor: Actor):
            data = validated(HeartbeatInput, {"ttl_seconds": ttl_seconds, "holder_token": holder_token})
            return lease_to_dict(locks.lock_heartbeat(actor=actor, lease_id=lease_id, **data))

        return await call(ctx, beat)

    @server.tool()
    async def release(ctx: Context, lease_id: int, holder_token: str, reason: str = "") -> CallToolResult:
        """Release a lock you hold; holder_token is the one lock returned."""

        def released(actor: Actor):
            data = validated(ReleaseInput, {"reason": reason, "holder_token": holder_token})
            result = locks.lock_release(actor=actor, lease_id=lease_id, **data)
            return {**lease_to_dict(result.lease), "released": result.released, "seq": result.seq}

        return await call(ctx, released)

    # --- tasks -----------------------------------------------------------------------------------

    @server.tool()
    async def claim(
        ctx: Context, role: str | None = None, kinds: list[str] | None = None, ttl_seconds: int = 300
    ) -> CallToolResult:
        """Claim the next queued task of your role (optionally of some kinds); {"task": null} when there
        is none. No other agent gets the same task; complete (or fail) it before ttl_seconds."""

        def claimed(actor: Actor):
            data = validated(TaskClaimInput, {"role": role, "kinds": kinds, "ttl_seconds": ttl_seconds})
            result = tasks.task_claim(actor=actor, **data)
            return {"task": {**task_to_dict(result.task), "seq": result.seq} if result else None}

        return await call(ctx, claimed)

    @server.tool()
    async def task_heartbeat(ctx: Context, task_id: int, ttl_seconds: int | None = None) -> CallToolResult:
        """Extend your claim on a task you are still working on."""

        def beat(actor: Actor):
            data = validated(TaskHeartbeatInput, {"ttl_seconds": ttl_seconds})
            return task_to_dict(tasks.task_heartbeat(actor=actor, task_id=task_id, ttl_seconds=data.get("ttl_seconds")))

        return await call(ctx, beat)

    @server.tool()
    async def complete(ctx: Context, task_id: int, result: Any = None) -> CallToolResult:
        """Complete a task you claimed, with its result (completing again returns the first result)."""

        def completed(actor: Actor):
            data = validated(TaskCompleteInput, {"result": result})
            done = tasks.task_complete(actor=actor, task_id=task_id, result=data.get("result"))
            return {**task_to_dict(done.task), "seq": done.seq, "replayed": done.replayed}

        return await call(ctx, completed)

    @server.tool()
    async def fail(ctx: Context, task_id: int, error: str = "", retry: bool = False) -> CallToolResult:
        """Give up a task you claimed: retry=true puts it back in the queue (until its attempts run out)."""

        def failed(actor: Actor):
            data = validated(TaskFailInput, {"error": error, "retry": retry})
            done = tasks.task_fail(actor=actor, task_id=task_id, **data)
            return {**task_to_dict(done.task), "seq": done.seq}

        return await call(ctx, failed)

    # --- awareness -------------------------------------------------------------------------------

    @server.tool()
    async def activity(ctx: Context, resource: str, window_seconds: int = 300) -> CallToolResult:
        """Before acting on a resource (a namespace like customer:acme, or namespace/key): what others
        did there lately, and proceed / defer_to / reason from the deference rules and human holds."""
        window = min(max(window_seconds, 1), MAX_WINDOW_SECONDS)
        return await call(ctx, lambda actor: activity_for(actor=actor, resource=resource, window_seconds=window))

    @server.tool()
    async def events(
        ctx: Context,
        since: int = 0,
        namespace: str | None = None,
        resource: str | None = None,
        type: str | None = None,
        limit: int = 100,
    ) -> CallToolResult:
        """Events after seq `since` that you may read, ascending (type may be a prefix like memory.*).
        Continue from next_since; last_seq is the newest seq in the log."""

        def listed(actor: Actor):
            results, cursor = events_visible(
                actor=actor,
                since=max(since, 0),
                namespace=namespace,
                resource=resource,
                type=type,
                limit=min(max(limit, 1), 1000),
            )
            return {"events": results, "next_since": cursor, "last_seq": last_seq()}

        return await call(ctx, listed)

    # --- resources -------------------------------------------------------------------------------

    @server.resource("memoryhub://memories/{namespace}/{key}", mime_type="application/json")
    async def memory_resource(namespace: str, key: str, ctx: Context) -> str:
        """A memory as JSON (what memory_get returns)."""
        return await _read(ctx, lambda actor: memory_selectors.memory_get(actor=actor, namespace=namespace, key=key))

    @server.resource("memoryhub://inbox/{state}", mime_type="application/json")
    async def inbox_resource(state: str, ctx: Context) -> str:
        """Your inbox, oldest first: memoryhub://inbox/unread, .../unacked or .../all."""
        return await _read(ctx, lambda actor: {"entries": inbox_list(agent_id=actor.id, state=state)})

    return server


RESOURCE_NOT_FOUND = -32002  # MCP's JSON-RPC code for an unknown resource
INVALID_PARAMS = -32602


async def _read(ctx: Context, operation: Callable[[Actor], Any]) -> str:
    """A resource's JSON; a refusal is a JSON-RPC error whose data is the hub's error shape."""
    result = await call(ctx, operation)
    if result.is_error:
        shape = result.structured_content or {}
        error = shape.get("error", {})
        code = RESOURCE_NOT_FOUND if error.get("code") == "not_found" else INVALID_PARAMS
        raise MCPError(code=code, message=f"{error.get('code')}: {error.get('message')}", data=shape)
    return result.content[0].text  # type: ignore[union-attr]
