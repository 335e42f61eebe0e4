"""REST authentication: each class returns `(user, Caller)`, the request context (memoryhub.context)
that views pass to services."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from memoryhub.actors import Actor
from memoryhub.context import Caller
from memoryhub.errors import AgentSuspended
from policies.selectors import caller_for, policy_position

from . import queries
from .models import Agent, token_digest
from .services import agent_touch


class AgentSuspendedFailed(exceptions.PermissionDenied):
    default_code = "agent_suspended"
    default_detail = AgentSuspended.default_message


def agent_for_token(token: str) -> tuple[Agent, Caller] | None:
    """The active token's agent and its request context, or None. Suspension is the caller's to check."""
    for agent, (policy_seq, policy_at, any_hold) in queries.agent_for_digest(token_digest(token)):
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
