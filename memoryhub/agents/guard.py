"""The agent guard: the first statement of every transaction that grants an agent something (a lock,
a task claim), so that a suspension cannot race it."""

from __future__ import annotations

from memoryhub.actors import Actor
from memoryhub.errors import AgentSuspended, NotFound

from . import queries
from .models import AgentStatus


def agent_lock_active(*, actor: Actor) -> None:
    """Lock the caller's Agent row and re-read its status (inside the caller's transaction). The kill
    switch (agent_set_status) locks the same row first, so a grant racing a suspension either commits
    before it (and is undone by it) or sees `suspended` here."""
    status = queries.agent_status_locked(actor.id)
    if status is None:
        raise NotFound(f"no agent {actor.id!r}")
    if status == AgentStatus.SUSPENDED:
        raise AgentSuspended()
