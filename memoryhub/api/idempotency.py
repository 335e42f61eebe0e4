"""Idempotency-Key: a write sent twice with the same key happens once, and the repeat gets the first answer.

A keyed request costs what an unkeyed one does plus one statement after its change (on PostgreSQL; one
before it too elsewhere):

1. **Claim, with the change.** The adapter puts a `Claim` (caller, key, request fingerprint, a token of
   this request) in the request context. The event log inserts the key's record as it appends the
   change's events, in the change's own transaction: on PostgreSQL in the very statement that appends
   them (memoryhub/events/queries.py `numbered_insert`: the record first, the sequence row after);
   elsewhere in a statement of its own just before (`claim_with_change`). So the record exists
   exactly when the change committed: a crash before the commit leaves neither, and the retry is
   processed afresh. Nothing is held across the request: no outer transaction, so the service's own
   fast paths (a stale write refused before any lock, a refusal recorded in autocommit) run as for an
   unkeyed write. A refusal recorded in autocommit (`event_record` outside a transaction, PostgreSQL)
   is that one statement too: its event and the key's record commit together or not at all, and
   when the key is taken (the retry of a conditional write whose first attempt committed, whose
   If-Match is stale now) nothing is recorded and the key answers.
2. **Store the answer, after the commit**, in a statement of its own (`settle`), the sequence row long
   released, committed without waiting for the disk (see memoryhub/api/queries.py: the record that
   makes the change exactly-once was flushed with the change; the answer can be rebuilt). A request that
   changed nothing (a 400, a refusal) stores its answer the same way, if it is one a retry must see
   again (`STORED_STATUSES`).
3. **A duplicate** finds the key taken: its own change is refused (`KeyTaken`, raised when the insert
   found the record, which on PostgreSQL first waits for the other transaction, holding nothing of
   the log) and rolls back, or its answer finds the record there. Then (`answer_duplicate`): another
   body under the same key is 422; a stored answer is replayed; a change committed whose answer is
   not stored yet is waited for up to `MEMORYHUB_IDEMPOTENCY_WAIT_MS`, then rebuilt from the events
   that carry the key (the first request's process may have died between its commit and storing the
   answer), or, for an endpoint that cannot rebuild its answer (and for a request still at work),
   refused with a clear 409 (which the client retries).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone

from memoryhub.errors import Conflict, IdempotencyKeyReused, Invalid

from . import queries
from .models import IdempotencyRecord

# Responses a retry with the same key must see again. Others (lock held, held, throttled, forbidden,
# not found...) depend on state that may change, so a retry is processed afresh.
STORED_STATUSES = {400, 412, 413, 428}
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Claim:
    """One request's hold on its key: who, which key, what request (method, path and body), and a
    token naming this request (so its own later transactions know the record is theirs)."""

    principal: str
    key: str
    fingerprint: str
    token: str

    @classmethod
    def of(cls, *, principal: str, key: str, method: str, path: str, body: bytes) -> Claim:
        if len(key) > MAX_KEY_LENGTH:
            raise Invalid(f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters")
        digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n")
        digest.update(body)
        return cls(principal=principal, key=key, fingerprint=digest.hexdigest(), token=secrets.token_hex(16))


class KeyTaken(Exception):
    """Raised inside a change's transaction when another request holds the key: the change rolls back."""


class RunAgain(Exception):
    """The request whose change was refused with KeyTaken finds the key free after all: its holder gave
    it back (its answer was not one to keep). Run the request again."""


def _storable(status: int) -> bool:
    return status < 300 or status in STORED_STATUSES


def _expired_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.MEMORYHUB_IDEMPOTENCY_TTL_SECONDS)


def _records(claim: Claim):
    return IdempotencyRecord.objects.filter(principal=claim.principal, key=claim.key)


def claim_with_change(claim: Claim) -> None:
    """In the transaction of a change, before its events take the sequence row: the key's record, or
    KeyTaken. (PostgreSQL inserts the record in the statement that appends the events instead, see
    memoryhub/events/queries.py `numbered_insert`, and calls `claim_found` when it was there.)"""
    while not queries.record_insert(
        principal=claim.principal,
        key=claim.key,
        fingerprint=claim.fingerprint,
        token=claim.token,
        status=None,
        body=b"",
        content_type="",
    ):
        if claim_found(claim):
            return


def claim_found(claim: Claim) -> bool:
    """The key's record was there when a change of this request went to insert it. True: it is this
    request's own (a request making several transactions, such as a lock wait, finds it again): the
    change goes on without claiming. False: it is gone, or a day old and now deleted (the key is free
    again): claim again. Else KeyTaken."""
    record = _records(claim).values("token", "created_at").first()
    if record is not None and record["token"] == claim.token:
        return True
    if record is not None and record["created_at"] >= _expired_before():
        raise KeyTaken(claim.key)
    _records(claim).filter(created_at__lt=_expired_before()).delete()
    return False


def _content(response) -> bytes:
    """What the key's record keeps of an answer: all of it, unless the view set `replay_content`
    (an answer holding a secret the hub must not keep, such as a lock's holder token)."""
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    return getattr(response, "replay_content", None) or response.content


def settle(claim: Claim, response, *, taken: bool, rebuild: Callable[[Any], Any]):
    """After the request: store its answer under the key, or answer as the key's first request did.
    `taken`: its change was refused with KeyTaken. `rebuild(since)`: the endpoint's answer rebuilt
    from the events carrying the key (appended since that time) of a change whose answer was lost,
    or None when it cannot. Returns the response
    to send; raises a HubError (422, 409) or RunAgain."""
    if not taken:
        status = response.status_code
        if _storable(status):
            body, content_type = _content(response), response.get("Content-Type", "application/json")
            answer = {"status": status, "body": body, "content_type": content_type}
            if queries.answer_store(principal=claim.principal, key=claim.key, token=claim.token, **answer):
                return response
            if queries.record_insert(
                principal=claim.principal,
                key=claim.key,
                fingerprint=claim.fingerprint,
                token=claim.token,
                durable=False,
                **answer,
            ):
                return response
        elif _records(claim).filter(token=claim.token).delete()[0]:
            return response  # its change committed, but the answer may change: a retry runs afresh
    replay = answer_duplicate(claim, rebuild=rebuild)
    if replay is None:
        if taken:
            raise RunAgain()  # the holder gave the key back (its answer was not one to keep)
        return response
    return replay


def answer_duplicate(claim: Claim, *, rebuild: Callable[[Any], Any]) -> HttpResponse | None:
    """The answer of the request that holds the key, or None when no request does."""
    deadline = time.monotonic() + settings.MEMORYHUB_IDEMPOTENCY_WAIT_MS / 1000
    pause = 0.005
    while True:
        record = _records(claim).first()
        if record is not None and record.created_at < _expired_before():
            _records(claim).filter(created_at__lt=_expired_before()).delete()  # a day old: free again
            record = None
        if record is None or record.token == claim.token:
            return None
        if record.fingerprint != claim.fingerprint:
            raise IdempotencyKeyReused(key=claim.key)
        if record.status_code is not None:
            return replayed(record)
        if time.monotonic() >= deadline:
            break
        # The holder committed its change and is storing the answer (a statement away): poll, briefly.
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
    response = rebuild(record.created_at)
    if response is None:
        raise Conflict(
            "A request with this Idempotency-Key is still in progress (or its change committed and its "
            "response was lost).",
            key=claim.key,
        )
    body, content_type = _content(response), response.get("Content-Type", "application/json")
    queries.answer_store(
        principal=claim.principal,
        key=claim.key,
        token=record.token,
        status=response.status_code,
        body=body,
        content_type=content_type,
    )
    response["Idempotent-Replayed"] = "true"
    return response


def replayed(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body), status=record.status_code, content_type=record.content_type)
    response["Idempotent-Replayed"] = "true"
    return response
