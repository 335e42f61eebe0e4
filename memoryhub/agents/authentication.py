from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from memoryhub import sql
from memoryhub.errors import AgentSuspended
from memoryhub.locks.selectors import ANY_HOLD_COLUMN, note_holds
from policies.selectors import POSITION_COLUMNS, note_position

from .models import Agent, token_digest
from .services import agent_touch


class AgentSuspendedFailed(exceptions.PermissionDenied):
    default_code = "agent_suspended"
    default_detail = AgentSuspended.default_message


# Every request runs this: one indexed join, written out so no ORM query is compiled per request.
# It also reads the position of the newest policy change, which policy_set() then needs not ask for,
# and whether any hold is in place, which the request's hold checks then need not ask while none is.
_AGENT_FOR_TOKEN = f"""
    SELECT {sql.columns(Agent, "a")}, {POSITION_COLUMNS}, {ANY_HOLD_COLUMN}
    FROM agents_agenttoken t JOIN agents_agent a ON a.id = t.agent_id
    WHERE t.digest = %s AND t.revoked_at IS NULL
"""


def agent_for_token(token: str) -> Agent | None:
    """The active token's agent, or None. Suspension is the caller's to check."""
    for agent, (policy_seq, policy_at, any_hold) in sql.instances_and_extras(
        Agent, _AGENT_FOR_TOKEN, [token_digest(token)]
    ):
        note_position(policy_seq, policy_at)
        note_holds(any_hold)
        return agent
    return None


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` -> (agent, None); unknown token -> 401; suspended agent -> 403."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        agent = agent_for_token(token) if token else None
        if agent is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        if agent.is_suspended:
            raise AgentSuspendedFailed()
        agent_touch(agent=agent)
        return agent, None

    def authenticate_header(self, request):
        return f'{self.keyword} realm="memoryhub"'
