from __future__ import annotations

import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.errors import Invalid, NotFound
from memoryhub.events.services import NewEvent, event_append, events_append
from memoryhub.locks.services import leases_release_all
from memoryhub.tasks.services import tasks_requeue_claims

from .models import Agent, AgentStatus, AgentToken, token_digest

# last_seen_at is refreshed at most this often, so a busy agent's reads stay reads.
TOUCH_INTERVAL = timedelta(seconds=5)


def _new_token(agent: Agent, label: str) -> str:
    token = "mh_" + secrets.token_urlsafe(32)
    AgentToken.objects.create(agent=agent, digest=token_digest(token), prefix=token[:10], label=label)
    return token


def agent_create(*, actor: Actor, agent_id: str, role: str, description: str = "") -> tuple[Agent, str]:
    """Create an agent and its first token. The token is returned once and stored only hashed."""
    agent = Agent(id=agent_id, role=role, description=description)
    try:
        agent.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
        raise Invalid(f"invalid agent ({problems})", **exc.message_dict)
    with transaction.atomic():
        if Agent.objects.filter(id=agent_id).exists():
            raise Invalid(f"agent {agent_id!r} already exists", id=["already exists"])
        agent.save(force_insert=True)
        token = _new_token(agent, "initial")
        event_append(
            actor=actor,
            type="agent.created",
            namespace=f"agent:{agent.id}",
            resource=f"agent:{agent.id}",
            summary=f"agent {agent.id} created with role {role}",
            after={"id": agent.id, "role": role},
            audience=[f"agent:{agent.id}"],
        )
    return agent, token


def _get(agent_id: str, *, for_update: bool = False) -> Agent:
    queryset = Agent.objects.select_for_update() if for_update else Agent.objects
    try:
        return queryset.get(id=agent_id)
    except Agent.DoesNotExist:
        raise NotFound(f"no agent {agent_id!r}")


def token_rotate(*, actor: Actor, agent_id: str, label: str = "rotated", revoke_existing: bool = True) -> str:
    """Issue a new token (and by default revoke the others). Returns the new token, shown once."""
    with transaction.atomic():
        agent = _get(agent_id, for_update=True)
        revoked = 0
        if revoke_existing:
            revoked = AgentToken.objects.filter(agent=agent, revoked_at=None).update(revoked_at=timezone.now())
        token = _new_token(agent, label)
        event_append(
            actor=actor,
            type="agent.token_created",
            namespace=f"agent:{agent.id}",
            resource=f"agent:{agent.id}",
            summary=f"new token for {agent.id}" + (f", {revoked} revoked" if revoked else ""),
            audience=[f"agent:{agent.id}"],
        )
    return token


def token_revoke(*, actor: Actor, token_id: int) -> None:
    with transaction.atomic():
        token = AgentToken.objects.select_for_update().filter(id=token_id, revoked_at=None).first()
        if token is None:
            return
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        event_append(
            actor=actor,
            type="agent.token_revoked",
            namespace=f"agent:{token.agent_id}",
            resource=f"agent:{token.agent_id}",
            summary=f"token {token.prefix}… of {token.agent_id} revoked",
            audience=[f"agent:{token.agent_id}"],
        )


def agent_touch(*, agent: Agent) -> None:
    """Mark the agent alive. Not a state change worth an event; throttled to one write per interval."""
    now = timezone.now()
    if agent.last_seen_at is None or now - agent.last_seen_at > TOUCH_INTERVAL:
        Agent.objects.filter(id=agent.id).update(last_seen_at=now)
        agent.last_seen_at = now


def agent_set_status(*, actor: Actor, agent_id: str, status: str, reason: str = "") -> tuple[Agent, int]:
    """The kill switch. Suspending releases the agent's locks and requeues its task claims, each with
    an event, in the same transaction; its next request is refused (REST and websocket)."""
    if status not in AgentStatus.values:
        raise Invalid(f"status must be one of {AgentStatus.values}")
    with transaction.atomic():
        agent = _get(agent_id, for_update=True)
        if agent.status == status:
            return agent, 0
        agent.status = status
        agent.status_changed_at = timezone.now()
        agent.status_reason = reason
        agent.save(update_fields=["status", "status_changed_at", "status_reason"])
        follow_ups: list[NewEvent] = []
        if status == AgentStatus.SUSPENDED:
            follow_ups += leases_release_all(agent_id=agent.id, reason=reason or "agent suspended")
            follow_ups += tasks_requeue_claims(agent_id=agent.id, reason=reason or "agent suspended")
        verb = "suspended" if status == AgentStatus.SUSPENDED else "resumed"
        events = events_append(
            actor=actor,
            events=[
                NewEvent(
                    type=f"agent.{verb}",
                    namespace=f"agent:{agent.id}",
                    resource=f"agent:{agent.id}",
                    summary=f"agent {agent.id} {verb}",
                    after={"id": agent.id, "status": status},
                    reason=reason,
                    audience=[f"agent:{agent.id}"],
                ),
                *follow_ups,
            ],
        )
    return agent, events[0].seq
