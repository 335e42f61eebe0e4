"""REST authentication: each class returns `(user, Caller)`, the request context (memoryhub.context)
that views pass to services."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from memoryhub import sql
from memoryhub.actors import Actor
from memoryhub.context import Caller
from memoryhub.errors import AgentSuspended
from memoryhub.locks.queries import ANY_HOLD_COLUMN
from policies.selectors import POSITION_COLUMNS, caller_for, policy_position

from .models import Agent, token_digest
from .services import agent_touch


class AgentSuspendedFailed(exceptions.PermissionDenied):
    default_code = "agent_suspended"
    default_detail = AgentSuspended.default_message


# Every request runs this: one indexed join, written out so no ORM query is compiled per request.
# It also reads the position of the newest policy change, at which the request's policies are then
# taken without asking again, and whether any hold is in place, which the request's hold checks then
# need not ask while none is.
_AGENT_FOR_TOKEN = f"""
    SELECT {sql.columns(Agent, "a")}, {POSITION_COLUMNS}, {ANY_HOLD_COLUMN}
    FROM agents_agenttoken t JOIN agents_agent a ON a.id = t.agent_id
    WHERE t.digest = %s AND t.revoked_at IS NULL
"""


def agent_for_token(token: str) -> tuple[Agent, Caller] | None:
    """The active token's agent and its request context, or None. Suspension is the caller's to check."""
    for agent, (policy_seq, policy_at, any_hold) in sql.instances_and_extras(
        Agent, _AGENT_FOR_TOKEN, [token_digest(token)]
    ):
        caller = caller_for(
            Actor.for_agent(agent), position=policy_position(policy_seq, policy_at), any_hold=bool(any_hold)
        )
        return agent, caller
    return None


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` -> (agent, Caller); unknown token -> 401; suspended agent -> 403."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        found = agent_for_token(token) if token else None
        if found is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        agent, caller = found
        if agent.is_suspended:
            raise AgentSuspendedFailed()
        agent_touch(agent=agent)
        return agent, caller

    def authenticate_header(self, request):
        return f'{self.keyword} realm="memoryhub"'


class HumanSessionAuthentication(SessionAuthentication):
    """A logged-in Django user (the dashboard's session, with CSRF) -> (user, Caller as that human)."""

    def authenticate(self, request):
        found = super().authenticate(request)
        if found is None:
            return None
        user, _ = found
        return user, caller_for(Actor.for_user(user))
