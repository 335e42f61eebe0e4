"""Every event type the log records, with what it means: the one list that the log checks appends
against, the dashboard's type filter offers, and docs/architecture.md shows (a test keeps the doc in
step)."""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "memory.created": "a memory's first version",
    "memory.updated": "a new version of a memory (PUT or PATCH)",
    "memory.deleted": "a memory became a tombstone",
    "memory.reverted": "a memory's content set back to an earlier version's, as a new version",
    "memory.expired": "a memory past its ttl (or pruned episodic memory) became a tombstone",
    "memory.verified": "a memory re-confirmed as still true (no new version)",
    "memory.stale": "a semantic memory past its namespace's stale_after_seconds, announced to its writers",
    "memory.superseded": "a memory replaced by a later write that superseded it (kept, no longer valid)",
    "memory.archived": "an episode summarized: kept for audit, out of default reads and search",
    "memory.summarized": "episodes summarized into a semantic memory (derived_from names them)",
    "conflict.rejected": "a memory write refused (stale version, field owned by another role, fencing)",
    "context.sent": "an inbox entry sent to a role or an agent",
    "context.read": "a recipient read an inbox entry",
    "context.acked": "a recipient acknowledged an inbox entry",
    "context.expired": "an inbox entry past its ttl",
    "lock.acquired": "a lease granted (or re-entered by its holder)",
    "lock.released": "a holder released one level of its lease",
    "lock.expired": "a lease past its ttl",
    "lock.force_released": "a human freed a lease, or its agent was suspended",
    "alert.lock_wait": "a lease held, or a wait lasting, more than twice what it should",
    "hold.placed": "a human stopped agents on a resource",
    "hold.lifted": "a human lifted a hold",
    "task.created": "a task queued for a role",
    "task.claimed": "an agent claimed a task",
    "task.completed": "the claimer completed its task",
    "task.failed": "the claimer gave its task up",
    "task.requeued": "a task back in the queue (a lapsed claim, a retry, a human)",
    "task.cancelled": "a human cancelled a task",
    "task.dead": "a task out of attempts",
    "agent.created": "an agent and its first token",
    "agent.suspended": "the kill switch: the agent's locks released, its claims requeued",
    "agent.resumed": "a suspended agent allowed back",
    "agent.token_created": "a new token for an agent (its old ones revoked unless kept)",
    "agent.token_revoked": "an agent's token revoked",
    "policy.changed": "the stored policies changed (file, command, admin)",
}


def event_type_filters() -> list[str]:
    """What the dashboard's type filter offers: each family (`lock.*`), then its types."""
    filters: list[str] = []
    for name in EVENT_TYPES:
        family = name.split(".", 1)[0] + ".*"
        if sum(other.startswith(family[:-1]) for other in EVENT_TYPES) > 1 and family not in filters:
            filters.append(family)
        filters.append(name)
    return filters
