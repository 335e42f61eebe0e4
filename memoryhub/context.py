"""The request context: who is calling and what the hub looked like when its request started.

The adapter builds one `Caller` per request (the REST token lookup, the session authentication, the
websocket, a command) and passes it to services and selectors where they take the actor. It is
immutable and lives as long as its request: nothing is kept in context variables, so a policy
position noted for one request cannot leak into another (the stale-policy bug of d836d77).

A bare `Actor` (a Celery task, a sweeper, a test) means "as of now": policies are read at the call
and hold checks ask the database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from policies.decide import PolicySet

from .actors import Actor

if TYPE_CHECKING:
    from memoryhub.api.idempotency import Claim


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller(Actor):
    """An authenticated actor with the policies at the log position its request started at, whether
    any human hold was in place then (None: not known, ask), and the request's Idempotency-Key (which
    the events its writes append carry) with its claim (memoryhub/api/idempotency.py)."""

    policies: PolicySet
    any_hold: bool | None = None
    idempotency_key: str = ""
    # The request's hold on its Idempotency-Key, which the change's transaction records (REST writes).
    idempotency_claim: Claim | None = None

    def with_idempotency_key(self, key: str, claim: Claim | None = None) -> Caller:
        return replace(self, idempotency_key=key, idempotency_claim=claim)
