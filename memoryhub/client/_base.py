"""What the sync and the async client share: configuration, the retry policy, and every operation.

Each operation is written once here and returns `self._run(work)`: a value on `HubClient`, an
awaitable on `AsyncHubClient`. `work` is a `Call` (one request: method, path, body, headers, how to
read the answer) or, for an operation that takes several requests or waits between them, `Steps`.

`Steps` is a generator that puts `yield` in front of every call it makes, to a client method or to the
transport (`memory = yield self.get(ns, key)`, `yield self._sleep(0.1)`), and gets the result back. On
`HubClient` the call has already happened when it is yielded (an error was raised right there, inside
the generator), so the runner hands the value straight back; on `AsyncHubClient` it is an awaitable,
which the runner awaits, then sends the result back or throws the error in at that `yield`. So the
logic (what to retry, when to stop) is written once, and sync.py / aio.py hold only the transport: how
to send a request, how to sleep, how to run steps. Adding an operation is adding a method here."""

from __future__ import annotations

import copy
import inspect
import json
import os
import random
import secrets
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from .errors import Conflict, HubError, NotFound, TransportError, VersionConflict, error_from_response
from .models import Activity, Agent, ContextEntry, Event, Lease, Memory, Page, Receipt, SearchPage, Task

DEFAULT_URL = "http://127.0.0.1:8000"
API = "/api/v1/"
_NO_BODY = object()

type Steps[T] = Generator[Any, Any, T]
"""An operation of several calls, written once (see the module's docstring); it returns a T."""


@dataclass(frozen=True)
class Deliver:
    """Yielded by a stream's steps: an item for the reader, not a call for the runner."""

    item: Any


@dataclass(frozen=True)
class Done:
    """What a runner returns when the steps have ended: their return value."""

    value: Any


@dataclass(frozen=True)
class Retry:
    """Exponential backoff with full jitter: attempt n sleeps uniform(0, min(cap, base * 2**n))."""

    attempts: int = 6  # tries in all, the first included
    base: float = 0.05
    cap: float = 2.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * (2**attempt)))


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @classmethod
    def of(cls, response: httpx.Response) -> Reply:
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        return cls(response.status_code, body, {k.lower(): v for k, v in response.headers.items()})

    @property
    def replayed(self) -> bool:
        return self.headers.get("idempotent-replayed", "").lower() == "true"

    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return float(value) if value else None
        except ValueError:
            return None


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = _NO_BODY
    headers: dict[str, str] = field(default_factory=dict)
    parse: Callable[[Reply], Any] = lambda reply: reply.body
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.method != "GET":
            # One key per logical write, reused by every retry of it: the hub answers a repeat with the
            # first response (Idempotent-Replayed: true) instead of doing the write twice.
            self.headers.setdefault("Idempotency-Key", str(uuid.uuid4()))
        if self.params:
            self.params = {k: v for k, v in self.params.items() if v is not None}

    def options(self, default_timeout: float) -> dict[str, Any]:
        """The keyword arguments of httpx's `request(method, path, ...)` (sync and async alike)."""
        body = None if self.body is _NO_BODY else self.body
        return {
            "params": self.params,
            "json": body,
            "headers": self.headers,
            "timeout": self.timeout or default_timeout,
        }


def retry_decision(reply: Reply, attempt: int, policy: Retry) -> float | None:
    """Seconds to wait before trying again, or None when the answer is final. Only answers that say
    nothing happened (or that the same key is still being worked on) are retried."""
    if attempt + 1 >= policy.attempts:
        return None
    if reply.status >= 500:
        return policy.delay(attempt)
    if reply.status == 429:
        return min(reply.retry_after() or policy.delay(attempt), 30.0)
    if reply.status == 409 and error_code(reply.body) == Conflict.code:
        return policy.delay(attempt)  # our own earlier attempt with this key has not finished yet
    return None


def error_code(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def raise_for(reply: Reply) -> None:
    if reply.status >= 400:
        raise error_from_response(reply.status, reply.body)


def retriable(error: HubError) -> bool:
    """A failure that says nothing about the request (the hub was down or broken), not a refusal."""
    return error.code == "unreachable" or error.status >= 500


def unreachable(call: Call, exc: BaseException) -> HubError:
    return TransportError(f"{call.method} {call.path}: {exc.__class__.__name__}: {exc}")


def _memory_path(namespace: str, key: str, suffix: str = "") -> str:
    return f"memories/{quote(namespace, safe=':@')}/{quote(key, safe=':@')}/{suffix}"


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _write_headers(version: int | None = None, fencing_token: int | None = None, create_only: bool = False):
    headers: dict[str, str] = {}
    if version is not None:
        headers["If-Match"] = f'"{int(version)}"'
    if create_only:
        headers["If-None-Match"] = "*"
    if fencing_token is not None:
        headers["X-Fencing-Token"] = str(int(fencing_token))
    return headers


def _include(invalid: bool) -> str | None:
    return "invalid" if invalid else None


def _memory(reply: Reply) -> Memory:
    return Memory.from_dict(reply.body, replayed=reply.replayed)


def _resources(resources: str | Iterable[str]) -> list[str]:
    return [resources] if isinstance(resources, str) else list(resources)


class Config:
    def __init__(self, base_url: str | None, token: str | None, retry: Retry | None, timeout: float) -> None:
        self.base_url = (base_url or os.environ.get("MEMORYHUB_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("MEMORYHUB_TOKEN", "")
        self.retry = retry or Retry()
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "memoryhub-client/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    @property
    def ws_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/ws/v1/events/"


class Operations[HTTPTransport: (httpx.BaseTransport, httpx.AsyncBaseTransport)]:
    """Every operation of the REST API, written once; the subclass provides the transport: `_http_client`
    (httpx's Client or AsyncClient), `_send` (one HTTP exchange), `_sleep`, `_finish` (run steps to
    their end), and the lock and stream classes."""

    _http_client: Callable[..., Any]
    _finish: Callable[[Steps[Any]], Any]
    _sleep: Callable[[float], Any]
    _lock_context: Callable[..., Any]  # what `lock()` returns
    _event_stream: Callable[..., Any]  # what `events()` returns

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: Retry | None = None,
        transport: HTTPTransport | None = None,
    ) -> None:
        self.config = Config(base_url, token, retry, timeout)
        self._http = self._http_client(
            base_url=self.config.base_url + API, headers=self.config.headers, timeout=timeout, transport=transport
        )

    def _send(self, call: Call) -> Any:  # pragma: no cover - the Reply, or an awaitable of it
        raise NotImplementedError

    def _run(self, work: Call | Steps[Any]) -> Any:
        return self._finish(self._exchange(work) if isinstance(work, Call) else work)

    def _exchange(self, call: Call) -> Steps[Any]:
        """One call with the retry policy: the parsed answer, or its typed HubError."""
        policy = self.config.retry
        for attempt in range(policy.attempts):
            try:
                reply = yield self._send(call)
            except httpx.TransportError as exc:
                if attempt + 1 >= policy.attempts:
                    raise unreachable(call, exc) from exc
                yield self._sleep(policy.delay(attempt))
                continue
            wait = retry_decision(reply, attempt, policy)
            if wait is not None:
                yield self._sleep(wait)
                continue
            raise_for(reply)
            return call.parse(reply)
        raise AssertionError("unreachable")  # the last attempt always returns or raises

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = _NO_BODY,
        headers: dict[str, str] | None = None,
    ):
        """Any endpoint, `path` relative to /api/v1/ (`"locks/contention/"`): the decoded answer, or a
        typed HubError. Writes get an Idempotency-Key unless `headers` brings one."""
        call = Call(method.upper(), path.lstrip("/"), params=params, body=json, headers=dict(headers or {}))
        return self._run(call)

    # --- agents ----------------------------------------------------------------------------------

    def me(self):
        """The caller: id, role, status, and the namespace patterns it may read and write."""
        return self._run(Call("GET", "me/", parse=lambda r: Agent.from_dict(r.body)))

    def heartbeat(self):
        """Mark the caller alive (`last_seen_at`)."""
        return self._run(Call("POST", "heartbeat/", body={}))

    def agents(self, role: str | None = None, status: str | None = None):
        return self._run(Call("GET", "agents/", params={"role": role, "status": status}, parse=_results))

    # --- memories --------------------------------------------------------------------------------

    def get(
        self,
        namespace: str,
        key: str,
        version: int | None = None,
        as_of: datetime | str | None = None,
        *,
        include_invalid: bool = False,
    ):
        """The memory now, or as it was at `version` / at time `as_of`. NotFound when absent or
        unreadable, and when superseded, past its `valid_until` or archived unless `include_invalid`."""
        params = {"version": version, "as_of": _iso(as_of), "include": _include(include_invalid)}
        return self._run(Call("GET", _memory_path(namespace, key), params=params, parse=_memory))

    def put(
        self,
        namespace: str,
        key: str,
        content: dict[str, Any],
        version: int | None = None,
        reason: str | None = None,
        kind: str | None = None,
        ttl: int | None = None,
        fencing_token: int | None = None,
        create_only: bool = False,
        *,
        supersedes: Iterable[tuple[str, str]] = (),
        valid_until: datetime | str | None = None,
    ):
        """Write the whole content. `version`: the version this write is based on (If-Match; required to
        update in an optimistic namespace). `create_only`: fail with VersionConflict if it exists.
        `supersedes`: (namespace, key) of memories this one replaces (kept, out of default reads and
        search, their `superseded_by` set); `valid_until`: when this fact stops holding (future)."""
        body: dict[str, Any] = {"content": content}
        if reason is not None:
            body["reason"] = reason
        if kind is not None:
            body["kind"] = kind
        if ttl is not None:
            body["ttl_seconds"] = int(ttl)
        refs = [{"namespace": ns, "key": k} for ns, k in supersedes]
        if refs:
            body["supersedes"] = refs
        if valid_until is not None:
            body["valid_until"] = _iso(valid_until)
        headers = _write_headers(version, fencing_token, create_only)
        return self._run(Call("PUT", _memory_path(namespace, key), body=body, headers=headers, parse=_memory))

    def patch(
        self,
        namespace: str,
        key: str,
        patch: dict[str, Any],
        version: int | None = None,
        reason: str | None = None,
        fencing_token: int | None = None,
    ):
        """Apply a JSON merge patch (RFC 7396: a key set to None is removed)."""
        body: dict[str, Any] = {"content": patch}
        if reason is not None:
            body["reason"] = reason
        headers = _write_headers(version, fencing_token)
        return self._run(Call("PATCH", _memory_path(namespace, key), body=body, headers=headers, parse=_memory))

    def delete(
        self,
        namespace: str,
        key: str,
        version: int | None = None,
        reason: str | None = None,
        fencing_token: int | None = None,
    ):
        """Delete (history stays). Returns the tombstone version (content None)."""
        body = {"reason": reason} if reason is not None else {}
        headers = _write_headers(version, fencing_token)
        return self._run(Call("DELETE", _memory_path(namespace, key), body=body, headers=headers, parse=_memory))

    def verify(self, namespace: str, key: str, reason: str | None = None):
        """Re-confirm a memory as still true (it is no longer `stale`): `verified_at`/`verified_by`
        move, the content and version do not. Returns the memory (`.seq`: the memory.verified event)."""
        body = {"reason": reason} if reason is not None else {}
        return self._run(Call("POST", _memory_path(namespace, key, "verify/"), body=body, parse=_memory))

    def search(
        self,
        q: str,
        *,
        mode: str = "hybrid",
        namespace: str | Iterable[str] | None = None,
        kind: str | None = None,
        updated_by: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        cursor: str | None = None,
        fresh: bool = False,
    ):
        """Live memories the caller may read that match `q`, best first: a SearchPage (`.results`,
        `.next_cursor`, `.incomplete`). `mode`: hybrid, lexical or semantic; `namespace`: globs;
        `filter`: top-level content fields, `{"status": "open", "n": {"$gt": 3}}`. Stale semantic
        memories rank after fresh ones (`result.stale`); `fresh=True` leaves them out."""
        params = {
            "q": q,
            "mode": mode,
            "namespace": None if namespace is None else _resources(namespace),
            "kind": kind,
            "updated_by": updated_by,
            "filter": None if filter is None else json.dumps(filter),
            "limit": limit,
            "cursor": cursor,
            "fresh": "true" if fresh else None,
        }
        return self._run(Call("GET", "search/", params=params, parse=lambda r: SearchPage.from_dict(r.body)))

    def history(self, namespace: str, key: str, *, limit: int | None = None):
        """Versions, newest first (version, type, seq, at, actor, reason, content, diff): the hub's
        pages followed through `next`, up to `limit` versions (None: all of them)."""
        return self._run(self._follow(_memory_path(namespace, key, "history/"), {}, "versions", limit, lambda v: v))

    def _follow(self, path: str, params: dict[str, Any], field: str, limit: int | None, item: Callable) -> Steps[list]:
        """Every page of a keyset-paginated list, following `next` until it is null (or `limit` items)."""
        items: list[Any] = []
        cursor = None
        while True:
            page = yield self._run(Call("GET", path, params={**params, "cursor": cursor}))
            items.extend(item(value) for value in page.get(field, []))
            cursor = page.get("next")
            if cursor is None or (limit is not None and len(items) >= limit):
                return items[:limit] if limit is not None else items

    def revert(
        self,
        namespace: str,
        key: str,
        to_version: int,
        reason: str | None = None,
        version: int | None = None,
        fencing_token: int | None = None,
    ):
        """Write a new version equal to `to_version`'s content (nothing is erased)."""
        body: dict[str, Any] = {"version": int(to_version)}
        if reason is not None:
            body["reason"] = reason
        headers = _write_headers(version, fencing_token)
        return self._run(
            Call("POST", _memory_path(namespace, key, "revert/"), body=body, headers=headers, parse=_memory)
        )

    def update(
        self,
        namespace: str,
        key: str,
        fn: Callable[[dict[str, Any]], Any],
        *,
        default: dict[str, Any] | None = None,
        reason: str | None = None,
        kind: str | None = None,
        ttl: int | None = None,
        fencing_token: int | None = None,
        max_attempts: int = 50,
        retry: Retry | None = None,
    ):
        """Read, apply `fn` to a copy of the content (it returns the new content, or None after changing
        the copy in place), write it back if the memory is still at the version read; on a conflict wait
        (exponential backoff + jitter), read again and re-apply. An absent memory is created from
        `default` (or {}) if nobody creates it first. Returns the memory as written (or as it is, when
        `fn` changed nothing). On `AsyncHubClient`, `fn` may also be a coroutine function."""
        write = {"reason": reason, "kind": kind, "ttl": ttl, "fencing_token": fencing_token}
        policy = retry or Retry(attempts=max_attempts, base=0.02, cap=1.0)
        return self._run(self._update(namespace, key, fn, default, write, max_attempts, policy))

    def _update(
        self,
        namespace: str,
        key: str,
        fn: Callable[[dict[str, Any]], Any],
        default: dict[str, Any] | None,
        write: dict[str, Any],
        attempts: int,
        policy: Retry,
    ) -> Steps[Memory]:
        current = yield from self._current(namespace, key)
        for attempt in range(attempts):
            if current is None:
                base = copy.deepcopy(default or {})
            else:
                # Reads of the current memory answer NotFound once it is deleted: a live one has content.
                assert current.content is not None
                base = copy.deepcopy(current.content)
            content = fn(base)
            if inspect.isawaitable(content):  # a coroutine function, on AsyncHubClient
                content = yield content
            if content is None:  # fn changed the dict in place
                content = base
            if current is not None and content == current.content:
                return current  # nothing to change
            try:
                version = current.version if current else None
                return (yield self.put(namespace, key, content, version=version, create_only=current is None, **write))
            except VersionConflict:
                if attempt + 1 >= attempts:
                    raise
            yield self._sleep(policy.delay(attempt))
            current = yield from self._current(namespace, key)
        raise AssertionError("unreachable")

    def _current(self, namespace: str, key: str) -> Steps[Memory | None]:
        try:
            return (yield self.get(namespace, key))
        except NotFound:
            return None

    def list_memories(
        self,
        namespace: str | None = None,
        kind: str | None = None,
        q: str | None = None,
        updated_by: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        task: int | None = None,
        include_invalid: bool = False,
    ):
        """One page of live memories the caller may read, by namespace then key; `namespace` may be a
        glob (`customer:*`). `task`: that task's working memories; `include_invalid`: superseded,
        past-validity and archived ones too. A Page: a list with `.next_cursor` (pass it as `cursor`
        for the next page; None on the last)."""
        params = {"namespace": namespace, "kind": kind, "q": q, "updated_by": updated_by, "limit": limit}
        params.update(cursor=cursor, task=task, include=_include(include_invalid))
        return self._run(
            Call(
                "GET",
                "memories/",
                params=params,
                parse=lambda r: Page([Memory.from_dict(m) for m in _results(r)], r.body.get("next")),
            )
        )

    def all_memories(
        self,
        namespace: str | None = None,
        kind: str | None = None,
        q: str | None = None,
        updated_by: str | None = None,
        *,
        task: int | None = None,
        include_invalid: bool = False,
    ):
        """Every live memory the caller may read (list_memories' pages followed to the end)."""
        params = {"namespace": namespace, "kind": kind, "q": q, "updated_by": updated_by, "limit": 500}
        params.update(task=task, include=_include(include_invalid))
        return self._run(self._follow("memories/", params, "results", None, Memory.from_dict))

    # --- context inbox ---------------------------------------------------------------------------

    def send(
        self,
        context_type: str,
        content: dict[str, Any],
        *,
        to_role: str | None = None,
        to_agent: str | None = None,
        subject: str | None = None,
        requires_ack: bool = False,
        ttl: int | None = None,
        reply_to: int | None = None,
    ):
        """Send a context entry to a role or an agent (exactly one of them). The hub sets the sender."""
        if (to_role is None) == (to_agent is None):
            raise ValueError("send() needs exactly one of to_role= or to_agent=")
        body: dict[str, Any] = {"context_type": context_type, "content": content, "requires_ack": requires_ack}
        body.update({"to_role": to_role} if to_role is not None else {"to_agent": to_agent})
        if subject is not None:
            body["subject"] = subject
        if ttl is not None:
            body["ttl_seconds"] = int(ttl)
        if reply_to is not None:
            body["reply_to"] = int(reply_to)
        return self._run(
            Call("POST", "contexts/", body=body, parse=lambda r: ContextEntry.from_dict(r.body, client=self))
        )

    def inbox(self, state: str = "unread", context_type: str | None = None, since: int | None = None, limit=100):
        """Entries addressed to the caller or its role, oldest first, each with the caller's receipt.
        `state`: unread, unacked or all. Listing changes nothing."""
        params = {"state": state, "context_type": context_type, "since": since, "limit": limit}
        return self._run(
            Call(
                "GET",
                "inbox/",
                params=params,
                parse=lambda r: [ContextEntry.from_dict(e, client=self) for e in _results(r)],
            )
        )

    def ack(self, entry_id: int, note: str = ""):
        """Acknowledge an entry (and mark it read). Idempotent."""
        return self._run(
            Call(
                "POST", f"contexts/{int(entry_id)}/ack/", body={"note": note}, parse=lambda r: Receipt.from_dict(r.body)
            )
        )

    def ack_many(self, entry_ids: Iterable[int], note: str = ""):
        body = {"ids": [int(i) for i in entry_ids], "note": note}
        return self._run(
            Call("POST", "inbox/ack/", body=body, parse=lambda r: [Receipt.from_dict(x) for x in _results(r)])
        )

    def mark_read(self, entry_id: int):
        """Mark an entry read. Idempotent."""
        return self._run(
            Call("POST", f"contexts/{int(entry_id)}/read/", body={}, parse=lambda r: Receipt.from_dict(r.body))
        )

    def context(self, entry_id: int):
        """An entry with every recipient's receipt."""
        return self._run(Call("GET", f"contexts/{int(entry_id)}/"))

    # --- locks -----------------------------------------------------------------------------------

    def acquire(
        self,
        resources: str | Iterable[str],
        ttl: int = 30,
        mode: str = "exclusive",
        wait: float = 0,
        *,
        holder_token: str | None = None,
    ):
        """Take a lease on all the resources at once (LockHeld with `.holders` after waiting up to
        `wait` seconds). Prefer `with hub.lock(...)`, which heartbeats and releases for you (and
        re-enters what an enclosing `lock()` of this client holds). `holder_token`: to re-enter a
        lease you hold, its `lease.holder_token`; without it a fresh one is drawn here (so that a
        retried request proves the same holder), and a lease your agent holds on these resources is
        someone else's to wait for."""
        token = holder_token or secrets.token_urlsafe(32)
        body = {
            "resources": _resources(resources),
            "mode": mode,
            "ttl_seconds": int(ttl),
            "wait_seconds": wait,
            "holder_token": token,
        }
        return self._run(
            Call(
                "POST",
                "locks/",
                body=body,
                parse=lambda r: Lease.from_dict({**r.body, "holder_token": token}, client=self),
                timeout=self.config.timeout + float(wait),
            )
        )

    def release(self, lease_id: int, reason: str = "", *, holder_token: str | None = None):
        """Release one level of a lease this process holds: `holder_token` is its acquisition's
        (`lease.release()` sends it for you); another process of the same agent cannot."""
        body = {"reason": reason} | ({"holder_token": holder_token} if holder_token else {})
        return self._run(Call("DELETE", f"locks/{int(lease_id)}/", body=body))

    def heartbeat_lock(self, lease_id: int, ttl: int | None = None, *, holder_token: str | None = None):
        """Extend a lease this process holds (`holder_token` as for `release`)."""
        body = ({"ttl_seconds": int(ttl)} if ttl else {}) | ({"holder_token": holder_token} if holder_token else {})
        return self._run(
            Call(
                "POST",
                f"locks/{int(lease_id)}/heartbeat/",
                body=body,
                parse=lambda r: Lease.from_dict({**r.body, "holder_token": holder_token}, self),
            )
        )

    def locks(self, resource: str | None = None, agent: str | None = None):
        """Active leases (and who waits)."""
        return self._run(Call("GET", "locks/", params={"resource": resource, "agent": agent}))

    def lock(
        self,
        resources: str | Iterable[str],
        ttl: int = 30,
        mode: str = "exclusive",
        wait: float = 10,
        *,
        heartbeat_every: float | None = None,
    ):
        """`with hub.lock("inventory:sku-1") as lease:` (`async with` on AsyncHubClient) — acquires
        (waiting up to `wait` s), heartbeats in the background while held (every ttl/3 s), releases on
        exit. `lease.fencing_token` goes with writes to locked namespaces; `lease.lost` turns True if
        the lease lapsed anyway."""
        return self._lock_context(self, resources, ttl=ttl, mode=mode, wait=wait, every=heartbeat_every)

    # --- tasks -----------------------------------------------------------------------------------

    def create_task(
        self,
        role: str,
        kind: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        priority: int | None = None,
    ):
        """Queue a task for agents of `role`. With `idempotency_key`, creating it again (from any retry
        or restart of the caller) returns the existing task (`created` False)."""
        body: dict[str, Any] = {"role": role, "kind": kind, "payload": {} if payload is None else payload}
        for name, value in (("idempotency_key", idempotency_key), ("max_attempts", max_attempts)):
            if value is not None:
                body[name] = value
        if priority is not None:
            body["priority"] = priority
        return self._run(Call("POST", "tasks/", body=body, parse=lambda r: Task.from_dict(r.body, client=self)))

    def claim(self, role: str | None = None, kinds: Iterable[str] | None = None, ttl: int = 60):
        """The next queued task of the caller's role, claimed for `ttl` seconds, or None."""
        body: dict[str, Any] = {"ttl_seconds": int(ttl)}
        if role is not None:
            body["role"] = role
        if kinds is not None:
            body["kinds"] = list(kinds)
        return self._run(
            Call(
                "POST",
                "tasks/claim/",
                body=body,
                parse=lambda r: None if r.status == 204 else Task.from_dict(r.body, client=self),
            )
        )

    def complete_task(self, task_id: int, result: Any = None):
        return self._run(
            Call("POST", f"tasks/{int(task_id)}/complete/", body={"result": result}, parse=self._task_parser)
        )

    def fail_task(self, task_id: int, error: str = "", retry: bool = False):
        body = {"error": error, "retry": retry}
        return self._run(Call("POST", f"tasks/{int(task_id)}/fail/", body=body, parse=self._task_parser))

    def heartbeat_task(self, task_id: int, ttl: int | None = None):
        body = {"ttl_seconds": int(ttl)} if ttl else {}
        return self._run(Call("POST", f"tasks/{int(task_id)}/heartbeat/", body=body, parse=self._task_parser))

    def task(self, task_id: int):
        return self._run(Call("GET", f"tasks/{int(task_id)}/", parse=self._task_parser))

    def tasks(
        self,
        status: str | None = None,
        role: str | None = None,
        kind: str | None = None,
        limit=100,
        cursor: str | None = None,
    ):
        """A page of tasks, oldest first: a list with `.next_cursor` (pass it as `cursor=`)."""
        params = {"status": status, "role": role, "kind": kind, "limit": limit, "cursor": cursor}
        return self._run(
            Call(
                "GET",
                "tasks/",
                params=params,
                parse=lambda r: Page([Task.from_dict(t, self) for t in _results(r)], r.body.get("next")),
            )
        )

    def _task_parser(self, reply: Reply) -> Task:
        return Task.from_dict(reply.body, client=self)

    # --- events and awareness --------------------------------------------------------------------

    def activity(self, resource: str, window_seconds: int = 300):
        """Recent events by others on `resource` and whether to proceed or defer (`.proceed`, `.defer_to`)."""
        params = {"resource": resource, "window_seconds": window_seconds}
        return self._run(Call("GET", "activity/", params=params, parse=lambda r: Activity.from_dict(r.body)))

    def event_log(
        self,
        since: int = 0,
        namespace: str | None = None,
        resource: str | None = None,
        actor: str | None = None,
        type: str | None = None,
        limit: int = 100,
    ):
        """One page of the event log (REST), ascending: the events readable by the caller after `since`."""
        params = {"since": since, "namespace": namespace, "resource": resource, "actor": actor, "type": type}
        params["limit"] = limit
        return self._run(
            Call("GET", "events/", params=params, parse=lambda r: [Event.from_dict(e) for e in _results(r)])
        )

    def last_seq(self):
        """The newest seq in the log (where `events(since=None)` starts)."""
        return self._run(Call("GET", "events/", params={"limit": 1}, parse=lambda r: int(r.body.get("last_seq", 0))))

    def events(
        self,
        since: int | None = 0,
        namespaces: Iterable[str] | None = None,
        *,
        contexts: bool = False,
        reconnect: bool = True,
        max_backoff: float = 5.0,
    ):
        """Iterate over events after `since` (None: from now) over the websocket (`async for` on
        AsyncHubClient), reconnecting after a drop and resuming from the last seq yielded: no gap, no
        repeat. `contexts=True` also yields a ContextEntry for each entry sent to the caller or its role."""
        return self._event_stream(
            self, since, namespaces, contexts=contexts, reconnect=reconnect, max_backoff=max_backoff
        )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch, as the hub applies it: objects merge recursively, None removes a key,
    anything else replaces. `hub.update(ns, key, lambda c: merge_patch(c, {"status": "done"}))`."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _results(reply: Reply) -> list[Any]:
    body = reply.body
    return body.get("results", []) if isinstance(body, dict) else list(body or [])
