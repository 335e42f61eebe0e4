"""A lease after its grant: heartbeats extend it; its holder releases it (one level at a time); a
human force-releases it; it expires when its ttl lapses (found by an acquirer, a heartbeat, a release
or the sweeper); the kill switch releases all of an agent's."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from memoryhub.actors import SYSTEM, Actor
from memoryhub.errors import Forbidden, Invalid, LeaseExpired, NotFound
from memoryhub.events.services import NewEvent, events_append

from . import queries
from .events import lease_event, lease_state
from .models import MAX_TTL_SECONDS, Lease, LeaseResource, LockResource, holder_digest
from .selectors import iso, lease_visible
from .waiting import announce_release


@dataclass(frozen=True)
class Release:
    lease: Lease
    seq: int | None
    released: bool


def lease_expire(lease: Lease, now: datetime, locked: set[str]) -> NewEvent:
    """Mark a lapsed lease expired (the caller holds its row lock); its `lock.expired` event for the
    caller to append. Contention counters move only on the resource rows the caller has locked:
    touching others would break the lock order."""
    lease.released_at = now
    lease.release_reason = "expired"
    lease.save(update_fields=["released_at", "release_reason"])
    LeaseResource.objects.filter(lease=lease, active=True).update(active=False)
    counted = [name for name in lease.resources if name in locked]
    if counted:
        LockResource.objects.filter(name__in=counted).update(expired_count=F("expired_count") + 1)
    announce_release(lease.resources)
    return lease_event(
        "lock.expired",
        lease,
        actor=SYSTEM,
        summary=f"{lease.agent_id}'s {lease.mode} lease {lease.id} on {', '.join(lease.resources)} expired",
        before=lease_state(lease),
        reason="expired",
    )


def _end(lease: Lease, *, now: datetime, how: str) -> None:
    lease.released_at = now
    lease.release_reason = how
    lease.depth = 0
    lease.save(update_fields=["released_at", "release_reason", "depth"])
    LeaseResource.objects.filter(lease=lease, active=True).update(active=False)
    announce_release(lease.resources)


def _lapsed(lease: Lease, now: datetime) -> LeaseExpired:
    return LeaseExpired(
        f"lease {lease.id} {'was ' + lease.release_reason if lease.release_reason else 'has expired'}"
        f" at {iso(lease.released_at or lease.expires_at)}; acquire the lock again",
        lease_id=lease.id,
        released_at=iso(lease.released_at or now),
        release_reason=lease.release_reason or "expired",
    )


def proof_digest(holder_token: str | None) -> str:
    """What a release or heartbeat proves: the digest of the holder token it sent, or '' for none
    (which matches only a lease granted before holder tokens, whose digest is '')."""
    return holder_digest(holder_token) if holder_token else ""


def _holders_live_lease(*, actor: Actor, lease_id: int, holder_token: str | None, doing: str) -> Lease | LeaseExpired:
    """The caller's lease, row-locked, if it is live; the refusal if it has lapsed or was released. A
    lapsed one is expired here (it was free to take from the moment it lapsed): the caller commits
    that record, then raises the refusal. The holder is the process its acquisition answered, proven
    by the holder token: several processes may run as one agent, and the agent id alone would let
    one release or keep alive another's lease."""
    lease = Lease.objects.select_for_update().filter(id=lease_id).first()
    if lease is None or not lease_visible(actor, lease):
        # Someone else's lease on names the caller may not read is, to it, no lease at all: the same
        # answer as for an id never drawn (as `GET locks/<id>/` gives).
        raise NotFound(f"no lease {lease_id}")
    if not (actor.is_agent and lease.agent_id == actor.id):
        raise Forbidden(f"lease {lease_id} is held by {lease.agent_id}; only its holder {doing}")
    if not hmac.compare_digest(lease.holder_digest, proof_digest(holder_token)):
        raise Forbidden(
            f"lease {lease_id} is held by another process of {lease.agent_id}; only its holder {doing}:"
            " send the holder_token its acquisition returned",
            holder_token=["missing" if not holder_token else "not this lease's holder token"],
        )
    now = timezone.now()
    if lease.released_at is None and lease.expires_at <= now:
        events_append(actor=SYSTEM, events=[lease_expire(lease, now, set())])
    return _lapsed(lease, now) if lease.released_at is not None else lease


def lock_heartbeat(
    *, actor: Actor, lease_id: int, ttl_seconds: int | None = None, holder_token: str | None = None
) -> Lease:
    """Extend the holder's lease to now + ttl. Not an event: heartbeats are liveness, not changes."""
    if ttl_seconds is not None and not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise Invalid(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}", ttl_seconds=["out of range"])
    with transaction.atomic():
        lease = _holders_live_lease(actor=actor, lease_id=lease_id, holder_token=holder_token, doing="may extend it")
        if isinstance(lease, Lease):
            now = timezone.now()
            lease.expires_at = now + timedelta(seconds=ttl_seconds or lease.ttl_seconds)
            lease.heartbeat_at = now
            lease.save(update_fields=["expires_at", "heartbeat_at"])
    if isinstance(lease, LeaseExpired):
        raise lease
    return lease


def _released_event(actor: Actor, lease: Lease, reason: str) -> NewEvent:
    if lease.depth > 0:
        summary = f"{actor.label} released one level of lease {lease.id} (depth {lease.depth} left)"
    else:
        summary = f"{actor.label} released {lease.mode} lease {lease.id} on {', '.join(lease.resources)}"
    return lease_event(
        "lock.released",
        lease,
        summary=summary,
        after=lease_state(lease) | {"released": lease.depth == 0},
        reason=reason,
    )


def lock_release(*, actor: Actor, lease_id: int, reason: str = "", holder_token: str | None = None) -> Release:
    """The holder (proven by its holder token) releases one level of its lease (`lock.released` when
    the last goes). Humans force-release instead; other agents, and other processes of its agent, may
    not touch it."""
    if actor.is_human:
        return lock_force_release(actor=actor, lease_id=lease_id, reason=reason)
    with transaction.atomic():
        # The common case, one statement: the holder lets go of a live, single-level lease.
        found: Lease | LeaseExpired | None = queries.lease_end_last_level(
            agent_id=actor.id, digest=proof_digest(holder_token), lease_id=lease_id, now=timezone.now()
        )
        if found is None:  # not the holder, lapsed, already released or re-entered: sort it out
            found = _holders_live_lease(
                actor=actor, lease_id=lease_id, holder_token=holder_token, doing="or a human may release it"
            )
            if isinstance(found, Lease):
                found.depth -= 1
                if found.depth > 0:
                    found.save(update_fields=["depth"])
                else:
                    _end(found, now=timezone.now(), how="released")
        if isinstance(found, Lease):
            (event,) = events_append(actor=actor, events=[_released_event(actor, found, reason)])
    if not isinstance(found, Lease):
        raise found
    return Release(lease=found, seq=event.seq, released=found.depth == 0)


def _force_released_event(lease: Lease, *, before: dict, summary: str, reason: str) -> NewEvent:
    return lease_event("lock.force_released", lease, summary=summary, before=before, reason=reason)


def lock_force_release(*, actor: Actor, lease_id: int, reason: str = "") -> Release:
    """A human frees a lease whatever its depth (a crashed or runaway holder)."""
    if not actor.is_human:
        raise Forbidden("only humans may force-release a lock")
    with transaction.atomic():
        lease = Lease.objects.select_for_update().filter(id=lease_id).first()
        if lease is None:
            raise NotFound(f"no lease {lease_id}")
        now = timezone.now()
        if lease.released_at is not None:
            raise _lapsed(lease, now)
        before = lease_state(lease)
        _end(lease, now=now, how="force_released")
        summary = f"{actor.label} force-released {lease.agent_id}'s lease {lease.id} on {', '.join(lease.resources)}"
        (event,) = events_append(
            actor=actor, events=[_force_released_event(lease, before=before, summary=summary, reason=reason)]
        )
    return Release(lease=lease, seq=event.seq, released=True)


def leases_release_all(*, agent_id: str, reason: str) -> list[NewEvent]:
    """The kill switch's part in locks: free every lease the agent holds. Runs inside the caller's
    transaction (agent_set_status, which holds the agent's row) and returns the events for it to
    append with its own."""
    if not connection.in_atomic_block:
        raise RuntimeError("leases_release_all runs inside the kill switch's transaction")
    now = timezone.now()
    events = []
    for lease in Lease.objects.select_for_update().filter(agent_id=agent_id, released_at=None).order_by("id"):
        before = lease_state(lease)
        _end(lease, now=now, how="suspended")
        summary = f"{agent_id}'s lease {lease.id} on {', '.join(lease.resources)} released: agent suspended"
        events.append(_force_released_event(lease, before=before, summary=summary, reason=reason))
    return events


def leases_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """The sweeper: record `lock.expired` for leases past their expiry that no acquirer has expired yet."""
    now = now or timezone.now()
    done = 0
    due = Lease.objects.filter(released_at=None, expires_at__lte=now).order_by("id").values_list("id", "resources")
    for lease_id, resources in list(due[:limit]):
        with transaction.atomic():
            # Resource rows first, in name order, like an acquirer: then the lease row.
            locked = set(
                LockResource.objects.select_for_update()
                .filter(name__in=resources)
                .order_by("name")
                .values_list("name", flat=True)
            )
            lease = Lease.objects.select_for_update().filter(id=lease_id, released_at=None, expires_at__lte=now).first()
            if lease is None:
                continue  # released, expired or extended meanwhile
            events_append(actor=SYSTEM, events=[lease_expire(lease, now, locked)])
            done += 1
    return done
