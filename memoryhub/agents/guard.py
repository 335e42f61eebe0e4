"""The agent guard: the first statement of every transaction that grants an agent something (a lock,
a task claim), so that a suspension cannot race it."""

from __future__ import annotations

from memoryhub import sql
from memoryhub.actors import Actor
from memoryhub.errors import AgentSuspended, NotFound

from .models import AgentStatus

# FOR NO KEY UPDATE: it does not block the rows that reference the agent (its leases, its claims).
_STATUS_FOR_UPDATE = "SELECT status FROM agents_agent WHERE id = %s{}"


def agent_lock_active(*, actor: Actor) -> None:
    """Lock the caller's Agent row and re-read its status (inside the caller's transaction). The kill
    switch (agent_set_status) locks the same row first, so a grant racing a suspension either commits
    before it (and is undone by it) or sees `suspended` here."""
    rows = sql.fetch(_STATUS_FOR_UPDATE.format(sql.row_lock("FOR NO KEY UPDATE")), [actor.id])
    if not rows:
        raise NotFound(f"no agent {actor.id!r}")
    if rows[0][0] == AgentStatus.SUSPENDED:
        raise AgentSuspended()
