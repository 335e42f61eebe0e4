"""Locks (TTL leases with fencing tokens) and human holds.

Lock order, the one every transaction here follows so none can deadlock with another:
the caller's Agent row -> LockResource rows by name -> Lease rows by id -> the event sequence row.
Releases and heartbeats lock only their Lease row; the kill switch locks the Agent row, then that
agent's Lease rows, and never a LockResource row.

An acquisition is all or nothing and happens in ONE transaction: lapsed leases on the requested
resources are expired there (a lapsed lease is free at once), conflicts are checked under the
resource row locks, and the grant, its counters and its `lock.acquired` event commit together. The
fencing token is the lease's id, drawn when the grant is inserted under the resource row locks: ids
only grow, and the next grant on a resource can only draw its id after this one commits, so tokens
rise strictly per resource.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from memoryhub import sql
from memoryhub.actors import SYSTEM, Actor
from memoryhub.errors import (
    AgentSuspended,
    Conflict,
    Forbidden,
    Held,
    HubError,
    Invalid,
    LeaseExpired,
    LockHeld,
    NotFound,
)
from memoryhub.events.services import NewEvent, event_append, events_append
from policies.decide import decide_write
from policies.selectors import policy_set

from .models import Hold, Lease, LeaseResource, LockMode, LockResource, LockWait
from .names import check_resource, covering_names, resource_namespace
from .selectors import iso
from .waiting import NOTIFY_SQL, announce_release, notifier

MAX_RESOURCES = 50
MAX_TTL_SECONDS = 24 * 3600
_LEASE_COLUMNS = sql.columns(Lease)  # what sql.instances(Lease, ...) reads
_LEASE_COLUMNS_L = sql.columns(Lease, "l")


# --- helpers -----------------------------------------------------------------------------------------


class _EventPlace(TypedDict):
    namespace: str
    resource: str


def _event_place(names: list[str]) -> _EventPlace:
    return {"namespace": resource_namespace(names[0]), "resource": ",".join(names)}


def _lease_state(lease: Lease) -> dict[str, Any]:
    return {
        "lease_id": lease.id,
        "agent": lease.agent_id,
        "mode": lease.mode,
        "resources": lease.resources,
        "depth": lease.depth,
        "fencing_token": lease.fencing_token,
        "ttl_seconds": lease.ttl_seconds,
        "expires_at": iso(lease.expires_at),
    }


@dataclass(frozen=True)
class _Holding:
    """An active LeaseResource row (a lease holding one of the requested resources) with its lease."""

    resource: str
    mode: str
    lease: Lease


def _holder(row: _Holding) -> dict[str, Any]:
    return {
        "resource": row.resource,
        "agent": row.lease.agent_id,
        "lease_id": row.lease.id,
        "mode": row.mode,
        "expires_at": iso(row.lease.expires_at),
    }


def require_active_agent(actor: Actor, *checks: tuple[str, list[Any]]) -> list[Any]:
    """Lock the caller's Agent row (FOR NO KEY UPDATE: it does not block rows referencing the agent)
    and re-read its status. The kill switch locks the same row first, so an acquisition or claim
    racing a suspension either commits before it (and is released by it) or sees `suspended`.

    `checks` are scalar subqueries `(sql, params)` the caller needs at the start of its transaction
    (is there a hold, a lapsed claim...): they ride along in the same statement, one round trip
    instead of two, and their values are returned in order."""
    from memoryhub.agents.models import AgentStatus

    columns = "".join(f", ({check})" for check, _ in checks)
    params = [param for _, check_params in checks for param in check_params]
    rows = sql.fetch(
        f"SELECT status{columns} FROM agents_agent WHERE id = %s{sql.row_lock('FOR NO KEY UPDATE')}",
        [*params, actor.id],
    )
    if not rows:
        raise NotFound(f"no agent {actor.id!r}")
    if rows[0][0] == AgentStatus.SUSPENDED:
        raise AgentSuspended()
    return list(rows[0][1:])


def _expire(lease: Lease, now: datetime, locked: set[str]) -> NewEvent:
    """Mark a lapsed lease expired (the caller holds its row lock). Contention counters move only on
    the resource rows the caller has locked: touching others would break the lock order."""
    lease.released_at = now
    lease.release_reason = "expired"
    lease.save(update_fields=["released_at", "release_reason"])
    LeaseResource.objects.filter(lease=lease, active=True).update(active=False)
    counted = [name for name in lease.resources if name in locked]
    if counted:
        LockResource.objects.filter(name__in=counted).update(expired_count=F("expired_count") + 1)
    announce_release(lease.resources)
    return NewEvent(
        type="lock.expired",
        actor=SYSTEM,
        **_event_place(lease.resources),
        summary=f"{lease.agent_id}'s {lease.mode} lease {lease.id} on {', '.join(lease.resources)} expired",
        before=_lease_state(lease),
        reason="expired",
        audience=[f"agent:{lease.agent_id}"],
    )


def _end(lease: Lease, *, now: datetime, how: str) -> None:
    lease.released_at = now
    lease.release_reason = how
    lease.depth = 0
    lease.save(update_fields=["released_at", "release_reason", "depth"])
    LeaseResource.objects.filter(lease=lease, active=True).update(active=False)
    announce_release(lease.resources)


# --- acquiring ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockGrant:
    lease: Lease
    seq: int
    reentered: bool = False
    waited_ms: int = 0


@dataclass
class LockRequest:
    """A validated acquisition, possibly spanning several attempts while it waits."""

    actor: Actor
    names: list[str]
    mode: str
    ttl_seconds: int
    wait_seconds: float = 0
    started: float = field(default_factory=time.monotonic)
    wait_id: int | None = None
    # The earliest expiry among the leases that blocked the last attempt: no point sleeping past it.
    blockers_expire_at: datetime | None = None
    holders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def deadline(self) -> float:
        return self.started + self.wait_seconds

    @property
    def waited_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000) if self.wait_id else 0

    def next_wait(self) -> float | None:
        """Seconds to wait for a release before the next attempt; None once the deadline has passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return None
        if self.blockers_expire_at is not None:
            until_expiry = (self.blockers_expire_at - timezone.now()).total_seconds() + 0.005
            remaining = min(remaining, max(until_expiry, 0.0))
        return remaining

    def refusal(self) -> LockHeld:
        return LockHeld(
            f"{', '.join(sorted({h['resource'] for h in self.holders}))} held by "
            f"{', '.join(sorted({h['agent'] for h in self.holders}))}",
            holders=self.holders,
            waited_ms=int((time.monotonic() - self.started) * 1000),
        )


def lock_request(*, actor: Actor, resources: Any, mode: str, ttl_seconds: int, wait_seconds: float = 0) -> LockRequest:
    """Validate an acquisition: names, mode, limits, and (for `memory:` resources) that the caller may
    write the memory's namespace, so no agent can block writers of a domain it has no part in."""
    if not actor.is_agent:
        raise Forbidden("only agents hold locks; humans place holds (POST holds/)")
    if not isinstance(resources, list) or not resources:
        raise Invalid("resources must be a non-empty list of names", resources=["must be a non-empty list"])
    if len(resources) > MAX_RESOURCES:
        raise Invalid(f"at most {MAX_RESOURCES} resources per lock", resources=["too many"])
    names = sorted({check_resource(name, "resources") for name in resources})
    if mode not in LockMode.values:
        raise Invalid(f"mode must be one of {LockMode.values}", mode=["invalid choice"])
    if not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise Invalid(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}", ttl_seconds=["out of range"])
    max_wait = settings.MEMORYHUB_MAX_LOCK_WAIT_SECONDS
    if not 0 <= wait_seconds <= max_wait:
        raise Invalid(f"wait_seconds must be between 0 and {max_wait}", wait_seconds=["out of range"])
    memory_names = [name for name in names if name.startswith("memory:")]
    if memory_names:
        policies = policy_set()
        for name in memory_names:
            decision = decide_write(policies, actor, resource_namespace(name))
            if not decision.allowed:
                raise Forbidden(f"{name}: {decision.reason}", resource=name, **decision.details())
    return LockRequest(actor=actor, names=names, mode=mode, ttl_seconds=ttl_seconds, wait_seconds=wait_seconds)


class _NewResources(Exception):
    """Some requested resources have no LockResource row yet."""

    def __init__(self, names: list[str]) -> None:
        self.names = names


def lock_attempt(request: LockRequest, *, final: bool) -> LockGrant | None:
    """One try, in one transaction. Returns the grant, or None with `request.holders` set (and the
    wait recorded, or on the `final` try the refusal counted). Lapsed leases found are expired and
    recorded whatever the outcome."""
    try:
        try:
            return _attempt(request, final=final)
        except _NewResources as new:
            # First use of a name: its row is created here, between attempts and holding no row lock
            # (an attempt never waits on another's INSERT while it holds resource rows), then the
            # attempt runs again. Rows are never deleted, so this happens once per name.
            LockResource.objects.bulk_create([LockResource(name=name) for name in new.names], ignore_conflicts=True)
            return _attempt(request, final=final)
    except HubError:
        # A hold placed or a suspension while it waited: the wait is over, refused.
        if request.wait_id:
            LockWait.objects.filter(id=request.wait_id, ended_at=None).update(
                ended_at=timezone.now(), outcome="refused"
            )
        raise


def _attempt(request: LockRequest, *, final: bool) -> LockGrant | None:
    actor = request.actor
    names = request.names
    covering = sorted(set().union(*(covering_names(name) for name in names)))
    with transaction.atomic():
        # The agent row lock and the hold check share one round trip.
        (hold_id,) = require_active_agent(
            actor,
            (
                f"SELECT id FROM locks_hold WHERE lifted_at IS NULL AND resource IN ({sql.placeholders(covering)})"
                " ORDER BY placed_at LIMIT 1",
                covering,
            ),
        )
        if hold_id is not None:
            hold = Hold.objects.get(id=hold_id)
            raise Held(
                f"{hold.resource} is held by {hold.placed_by}" + (f": {hold.reason}" if hold.reason else ""),
                hold=hold.resource,
                placed_by=hold.placed_by,
                reason=hold.reason,
            )
        # The global order: every acquirer locks resource rows sorted by name, so callers asking for
        # [a, b] and [b, a] queue on `a` instead of each holding one and waiting for the other.
        locked = {
            name
            for (name,) in sql.fetch(
                f"SELECT name FROM locks_lockresource WHERE name IN ({sql.placeholders(names)})"
                f" ORDER BY name{sql.row_lock('FOR UPDATE')}",
                names,
            )
        }
        if len(locked) < len(names):
            raise _NewResources([name for name in names if name not in locked])
        # Read the clock only now that the rows are ours: time spent queueing on them must not make
        # the expiry check (or the grant's acquired_at) look into the past.
        now = timezone.now()
        # A separate statement from the row locks above, so that it sees every grant committed while
        # this transaction queued on them.
        rows = [
            _Holding(resource=resource, mode=mode, lease=lease)
            for lease, (resource, mode) in sql.instances_and_extras(
                Lease,
                f"SELECT {_LEASE_COLUMNS_L}, r.resource, r.mode"
                " FROM locks_leaseresource r JOIN locks_lease l ON l.id = r.lease_id"
                f" WHERE r.active AND r.resource IN ({sql.placeholders(names)}) ORDER BY r.resource, r.lease_id",
                names,
            )
        ]
        expired: list[NewEvent] = []
        if any(row.lease.expires_at <= now for row in rows):
            # A lapsed lease is free at once: expire it here (its holder may be releasing or
            # heartbeating it right now, hence the lease row lock and the re-check).
            lapsed = sorted({row.lease.id for row in rows if row.lease.expires_at <= now})
            expired = [
                _expire(lease, now, locked)
                for lease in Lease.objects.select_for_update()
                .filter(id__in=lapsed, released_at=None, expires_at__lte=now)
                .order_by("id")
            ]
            rows = [row for row in rows if row.lease.expires_at > now]

        for lease in {row.lease.id: row.lease for row in rows if row.lease.agent_id == actor.id}.values():
            compatible = lease.mode == LockMode.EXCLUSIVE or request.mode == LockMode.SHARED
            if sorted(lease.resources) == names and compatible:
                return _reenter(request, lease_id=lease.id, now=now, expired=expired)

        conflicts = [row for row in rows if request.mode == LockMode.EXCLUSIVE or row.mode == LockMode.EXCLUSIVE]
        if conflicts:
            request.holders = [_holder(row) for row in conflicts]
            request.blockers_expire_at = min(row.lease.expires_at for row in conflicts)
            _record_refusal(request, conflicts=conflicts, now=now, final=final)
            if expired:
                events_append(actor=actor, events=expired)
            return None
        return _grant(request, now=now, expired=expired)


def _record_refusal(request: LockRequest, *, conflicts: list[_Holding], now: datetime, final: bool) -> None:
    blocked = sorted({row.resource for row in conflicts})
    if final:
        updates: dict[str, Any] = {"denied_count": F("denied_count") + 1}
        if request.wait_id:
            updates |= {"waited_count": F("waited_count") + 1, "wait_ms_total": F("wait_ms_total") + request.waited_ms}
            LockWait.objects.filter(id=request.wait_id).update(ended_at=now, outcome="timeout")
        LockResource.objects.filter(name__in=blocked).update(**updates)
    elif request.wait_id is None:
        wait = LockWait.objects.create(
            agent_id=request.actor.id,
            mode=request.mode,
            resources=request.names,
            blocked_by=sorted({row.lease.id for row in conflicts}),
            started_at=now,
            expected_until=max(row.lease.expires_at for row in conflicts),
            deadline=now + timedelta(seconds=max(request.deadline - time.monotonic(), 0)),
        )
        request.wait_id = wait.id


def _grant(request: LockRequest, *, now: datetime, expired: list[NewEvent]) -> LockGrant:
    actor, names = request.actor, request.names
    lease = Lease(
        agent_id=actor.id,
        mode=request.mode,
        resources=names,
        ttl_seconds=request.ttl_seconds,
        acquired_at=now,
        expires_at=now + timedelta(seconds=request.ttl_seconds),
    )
    waited_ms = request.waited_ms
    counters = "acquired_count = acquired_count + 1"
    if request.wait_id:
        counters += f", waited_count = waited_count + 1, wait_ms_total = wait_ms_total + {int(waited_ms)}"
    lease.id = lease.fencing_token = _insert_lease(lease, counters=counters)
    if request.wait_id:
        LockWait.objects.filter(id=request.wait_id).update(ended_at=now, outcome="granted", lease=lease)
    acquired = NewEvent(
        type="lock.acquired",
        **_event_place(names),
        summary=f"{actor.label} acquired a {request.mode} lock on {', '.join(names)} for {request.ttl_seconds}s",
        after=_lease_state(lease) | ({"waited_ms": waited_ms} if waited_ms else {}),
        audience=[f"agent:{actor.id}"],
    )
    event = events_append(actor=actor, events=[*expired, acquired])[-1]
    return LockGrant(lease=lease, seq=event.seq, waited_ms=waited_ms)


def _insert_lease(lease: Lease, *, counters: str) -> int:
    """Write a granted lease: its row, with its id as its fencing token, one LeaseResource row per
    resource (the partial unique index "one_exclusive_holder" backs the conflict check in the
    database) and the resources' counters. Returns the lease id. The caller holds the resource rows."""
    names = lease.resources
    columns = "agent_id, mode, resources, ttl_seconds, depth, acquired_at, expires_at, release_reason"
    lease_params = [
        lease.agent_id,
        lease.mode,
        Lease._meta.get_field("resources").get_db_prep_save(names, connection),
        lease.ttl_seconds,
        lease.acquired_at,
        lease.expires_at,
    ]
    count = f"UPDATE locks_lockresource SET {counters} WHERE name IN ({sql.placeholders(names)})"
    held_rows = ", ".join(["(%s)"] * len(names))
    if connection.vendor == "postgresql":
        # The writes in one statement (one round trip): the id is drawn once and is also the fencing
        # token; data-modifying CTEs all run, the resource rows get the id through RETURNING.
        ((lease_id,),) = sql.fetch(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('locks_lease', 'id')) AS id),"
            f" lease AS (INSERT INTO locks_lease (id, fencing_token, {columns})"
            " SELECT n.id, n.id, %s, %s, %s::jsonb, %s, 1, %s, %s, '' FROM n RETURNING id),"
            " held AS (INSERT INTO locks_leaseresource (lease_id, resource, mode, active)"
            f" SELECT lease.id, v.column1, %s, true FROM lease, (VALUES {held_rows}) AS v),"
            f" counted AS ({count})"
            " SELECT id FROM lease",
            [*lease_params, lease.mode, *names, *names],
        )
        return lease_id
    ((lease_id,),) = sql.fetch(
        f"INSERT INTO locks_lease (fencing_token, {columns}) VALUES (0, %s, %s, %s, %s, 1, %s, %s, '') RETURNING id",
        lease_params,
    )
    sql.execute("UPDATE locks_lease SET fencing_token = id WHERE id = %s", [lease_id])
    sql.execute(
        "INSERT INTO locks_leaseresource (lease_id, resource, mode, active)"
        f" SELECT %s, v.column1, %s, true FROM (VALUES {held_rows}) AS v",
        [lease_id, lease.mode, *names],
    )
    sql.execute(count, names)
    return lease_id


def _reenter(request: LockRequest, *, lease_id: int, now: datetime, expired: list[NewEvent]) -> LockGrant:
    """The holder asks again for what it holds: one more level to release, a later expiry, the same
    fencing token (it is still the same grant)."""
    lease = Lease.objects.select_for_update().get(id=lease_id)
    lease.depth += 1
    lease.expires_at = max(lease.expires_at, now + timedelta(seconds=request.ttl_seconds))
    lease.save(update_fields=["depth", "expires_at"])
    if request.wait_id:
        LockWait.objects.filter(id=request.wait_id).update(ended_at=now, outcome="granted", lease=lease)
    event = events_append(
        actor=request.actor,
        events=[
            *expired,
            NewEvent(
                type="lock.acquired",
                **_event_place(lease.resources),
                summary=f"{request.actor.label} re-entered lease {lease.id} on {', '.join(lease.resources)} "
                f"(depth {lease.depth})",
                after=_lease_state(lease) | {"reentered": True, "fencing_token": lease.fencing_token},
                audience=[f"agent:{lease.agent_id}"],
            ),
        ],
    )[-1]
    return LockGrant(lease=lease, seq=event.seq, reentered=True, waited_ms=request.waited_ms)


def lock_acquire(
    *, actor: Actor, resources: Any, mode: str = "exclusive", ttl_seconds: int = 30, wait_seconds: float = 0
) -> LockGrant:
    """Acquire all the resources at once, or raise LockHeld (409) with the holders after waiting up to
    `wait_seconds`. Waiting happens between transactions, never inside one: the waiter sleeps until a
    release of one of its resources commits (this process or, on PostgreSQL, any), the first blocking
    lease is due to expire, or the deadline; a bounded re-check is the safety net."""
    request = lock_request(
        actor=actor, resources=resources, mode=mode, ttl_seconds=ttl_seconds, wait_seconds=wait_seconds
    )
    if request.wait_seconds and connection.in_atomic_block:
        raise RuntimeError("waiting for a lock needs autocommit: other writers must be able to release it")
    subscription = notifier.subscribe(request.names) if request.wait_seconds else None
    try:
        while True:
            final = request.next_wait() is None
            if subscription:
                subscription.clear()
            grant = lock_attempt(request, final=final)
            if grant is not None:
                return grant
            if final:
                raise request.refusal()
            timeout = request.next_wait()
            if timeout is None:
                continue  # the deadline passed during the attempt: one last, counted try
            # Only a request with wait_seconds > 0 gets here (otherwise the first attempt is final),
            # and exactly such a request subscribed above.
            assert subscription is not None
            subscription.wait(timeout)
    finally:
        if subscription:
            notifier.unsubscribe(subscription)


# --- holding and releasing ----------------------------------------------------------------------------


def _raise_after(error: HubError | None) -> None:
    if error is not None:
        raise error


def _lapsed(lease: Lease, now: datetime) -> LeaseExpired:
    return LeaseExpired(
        f"lease {lease.id} {'was ' + lease.release_reason if lease.release_reason else 'has expired'}"
        f" at {iso(lease.released_at or lease.expires_at)}; acquire the lock again",
        lease_id=lease.id,
        released_at=iso(lease.released_at or now),
        release_reason=lease.release_reason or "expired",
    )


def _locked_lease(lease_id: int) -> Lease:
    lease = Lease.objects.select_for_update().filter(id=lease_id).first()
    if lease is None:
        raise NotFound(f"no lease {lease_id}")
    return lease


def lock_heartbeat(*, actor: Actor, lease_id: int, ttl_seconds: int | None = None) -> Lease:
    """Extend the holder's lease to now + ttl. Not an event: heartbeats are liveness, not changes."""
    if ttl_seconds is not None and not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise Invalid(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}", ttl_seconds=["out of range"])
    error: HubError | None = None
    with transaction.atomic():
        lease = _locked_lease(lease_id)
        if not (actor.is_agent and lease.agent_id == actor.id):
            raise Forbidden(f"lease {lease_id} is held by {lease.agent_id}; only its holder may extend it")
        now = timezone.now()
        if lease.released_at is None and lease.expires_at <= now:
            # Too late: it was free to take from the moment it lapsed. Record the expiry now.
            events_append(actor=SYSTEM, events=[_expire(lease, now, set())])
        if lease.released_at is not None:
            error = _lapsed(lease, now)
        else:
            lease.expires_at = now + timedelta(seconds=ttl_seconds or lease.ttl_seconds)
            lease.heartbeat_at = now
            lease.save(update_fields=["expires_at", "heartbeat_at"])
    _raise_after(error)
    return lease


@dataclass(frozen=True)
class Release:
    lease: Lease
    seq: int | None
    released: bool


def lock_release(*, actor: Actor, lease_id: int, reason: str = "") -> Release:
    """The holder releases one level of its lease (`lock.released` when the last goes). Humans
    force-release instead; other agents may not touch it."""
    if actor.is_human:
        return lock_force_release(actor=actor, lease_id=lease_id, reason=reason)
    error: HubError | None = None
    result: Release | None = None
    with transaction.atomic():
        now = timezone.now()
        if actor.is_agent and (lease := _release_last_level(actor=actor, lease_id=lease_id, now=now)):
            # The common case: the holder let go of a live, single-level lease.
            event = event_append(
                actor=actor,
                type="lock.released",
                **_event_place(lease.resources),
                summary=f"{actor.label} released {lease.mode} lease {lease.id} on {', '.join(lease.resources)}",
                before=None,
                after=_lease_state(lease) | {"released": True},
                reason=reason,
                audience=[f"agent:{lease.agent_id}"],
            )
            return Release(lease=lease, seq=event.seq, released=True)
        lease = _locked_lease(lease_id)
        if not (actor.is_agent and lease.agent_id == actor.id):
            raise Forbidden(f"lease {lease_id} is held by {lease.agent_id}; only its holder or a human may release it")
        now = timezone.now()
        if lease.released_at is None and lease.expires_at <= now:
            events_append(actor=SYSTEM, events=[_expire(lease, now, set())])
        if lease.released_at is not None:
            error = _lapsed(lease, now)
        else:
            lease.depth -= 1
            if lease.depth > 0:
                lease.save(update_fields=["depth"])
                summary = f"{actor.label} released one level of lease {lease.id} (depth {lease.depth} left)"
            else:
                _end(lease, now=now, how="released")
                summary = f"{actor.label} released {lease.mode} lease {lease.id} on {', '.join(lease.resources)}"
            event = event_append(
                actor=actor,
                type="lock.released",
                **_event_place(lease.resources),
                summary=summary,
                before=None,
                after=_lease_state(lease) | {"released": lease.depth == 0},
                reason=reason,
                audience=[f"agent:{lease.agent_id}"],
            )
            result = Release(lease=lease, seq=event.seq, released=lease.depth == 0)
    _raise_after(error)
    assert result is not None
    return result


def _release_last_level(*, actor: Actor, lease_id: int, now: datetime) -> Lease | None:
    """Compare-and-set: end the lease if the caller holds it, it is live and this is its last level;
    free its resources and wake their waiters. Returns the lease as written (`RETURNING`, no
    read-back), or None for every other case (not the holder, lapsed, already released, re-entered),
    which the caller sorts out under the row lock."""
    end = (
        "UPDATE locks_lease SET depth = 0, released_at = %s, release_reason = 'released'"
        " WHERE id = %s AND agent_id = %s AND depth = 1 AND released_at IS NULL AND expires_at > %s"
        f" RETURNING {_LEASE_COLUMNS}"
    )
    params = [now, lease_id, actor.id, now]
    if connection.vendor == "postgresql":
        # One round trip for the three: a data-modifying CTE runs whether or not the outer query reads
        # it, and the NOTIFY is evaluated only for a lease actually ended (sent at commit, as always).
        leases = sql.instances(
            Lease,
            f"WITH lease AS ({end}), freed AS (UPDATE locks_leaseresource SET active = false"
            " WHERE lease_id IN (SELECT id FROM lease) AND active)"
            f" SELECT {_LEASE_COLUMNS}, {NOTIFY_SQL} FROM lease",
            params,
        )
        if leases:
            announce_release(leases[0].resources, notify_sent=True)
    else:
        leases = sql.instances(Lease, end, params)
        if leases:
            sql.execute("UPDATE locks_leaseresource SET active = false WHERE lease_id = %s AND active", [leases[0].id])
            announce_release(leases[0].resources)
    return leases[0] if leases else None


def lock_force_release(*, actor: Actor, lease_id: int, reason: str = "") -> Release:
    """A human frees a lease whatever its depth (a crashed or runaway holder)."""
    if not actor.is_human:
        raise Forbidden("only humans may force-release a lock")
    error: HubError | None = None
    with transaction.atomic():
        lease = _locked_lease(lease_id)
        now = timezone.now()
        if lease.released_at is not None:
            error = _lapsed(lease, now)
        else:
            before = _lease_state(lease)
            _end(lease, now=now, how="force_released")
            event = event_append(
                actor=actor,
                type="lock.force_released",
                **_event_place(lease.resources),
                summary=f"{actor.label} force-released {lease.agent_id}'s lease {lease.id} on "
                f"{', '.join(lease.resources)}",
                before=before,
                reason=reason,
                audience=[f"agent:{lease.agent_id}"],
            )
    _raise_after(error)
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
        before = _lease_state(lease)
        _end(lease, now=now, how="suspended")
        events.append(
            NewEvent(
                type="lock.force_released",
                **_event_place(lease.resources),
                summary=f"{agent_id}'s lease {lease.id} on {', '.join(lease.resources)} released: agent suspended",
                before=before,
                reason=reason,
                audience=[f"agent:{agent_id}"],
            )
        )
    return events


# --- sweepers -----------------------------------------------------------------------------------------


def leases_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """Record `lock.expired` for leases past their expiry that no acquirer has expired yet."""
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
            events_append(actor=SYSTEM, events=[_expire(lease, now, locked)])
            done += 1
    return done


def lock_alerts_raise(*, now: datetime | None = None) -> int:
    """`alert.lock_wait`, once each: for a lease held (still active) longer than twice its ttl, and for
    a wait lasting longer than twice its expected duration."""
    now = now or timezone.now()
    raised = 0
    for lease in Lease.objects.filter(released_at=None, expires_at__gt=now, alerted_at=None):
        held = (now - lease.acquired_at).total_seconds()
        if held <= 2 * lease.ttl_seconds:
            continue
        with transaction.atomic():
            # Compare-and-set on alerted_at: two sweepers never alert twice.
            if not Lease.objects.filter(id=lease.id, alerted_at=None).update(alerted_at=now):
                continue
            event_append(
                actor=SYSTEM,
                type="alert.lock_wait",
                **_event_place(lease.resources),
                summary=f"{lease.agent_id} has held {', '.join(lease.resources)} for {held:.0f}s, "
                f"more than twice its {lease.ttl_seconds}s ttl",
                after={
                    "kind": "held_too_long",
                    "lease_id": lease.id,
                    "agent": lease.agent_id,
                    "resources": lease.resources,
                    "held_seconds": round(held, 3),
                    "ttl_seconds": lease.ttl_seconds,
                },
                audience=[f"agent:{lease.agent_id}"],
            )
            raised += 1
    recent = now - timedelta(days=1)
    for wait in LockWait.objects.filter(alerted_at=None, started_at__gte=recent):
        end = wait.ended_at or min(now, wait.deadline)
        waited = (end - wait.started_at).total_seconds()
        if waited <= 2 * wait.expected_seconds:
            continue
        with transaction.atomic():
            if not LockWait.objects.filter(id=wait.id, alerted_at=None).update(alerted_at=now):
                continue
            event_append(
                actor=SYSTEM,
                type="alert.lock_wait",
                **_event_place(wait.resources),
                summary=f"{wait.agent_id} waited {waited:.1f}s for {', '.join(wait.resources)}, more than twice "
                f"the {wait.expected_seconds:.1f}s expected",
                after={
                    "kind": "waited_too_long",
                    "wait_id": wait.id,
                    "agent": wait.agent_id,
                    "resources": wait.resources,
                    "blocked_by": wait.blocked_by,
                    "waited_seconds": round(waited, 3),
                    "expected_seconds": round(wait.expected_seconds, 3),
                    "outcome": wait.outcome or "waiting",
                },
                audience=[f"agent:{wait.agent_id}"],
            )
            raised += 1
    return raised


# --- holds ----------------------------------------------------------------------------------------------


def hold_place(*, actor: Actor, resource: str, reason: str = "") -> tuple[Hold, int]:
    """A human stops agents on a resource: their memory writes and lock requests there answer 423 and
    `activity/` tells every agent to defer, until the hold is lifted."""
    if not actor.is_human:
        raise Forbidden("only humans may place holds")
    check_resource(resource)
    with transaction.atomic():
        existing = Hold.objects.filter(resource=resource, lifted_at=None).first()
        if existing is not None:
            raise Conflict(f"{resource} is already held by {existing.placed_by}", hold_id=existing.id)
        try:
            with transaction.atomic():  # the partial unique index decides a race between two humans
                hold = Hold.objects.create(
                    resource=resource, placed_by=actor.label, reason=reason, placed_at=timezone.now()
                )
        except IntegrityError:
            raise Conflict(f"{resource} is already held")
        announce_release(None)  # waiters for locks under the hold wake up to be refused (423)
        event = event_append(
            actor=actor,
            type="hold.placed",
            namespace=resource_namespace(resource),
            resource=resource,
            summary=f"{actor.label} placed a hold on {resource}",
            after={"hold_id": hold.id, "resource": resource, "placed_by": hold.placed_by, "reason": reason},
            reason=reason,
        )
    return hold, event.seq


def hold_lift(*, actor: Actor, hold_id: int, reason: str = "") -> tuple[Hold, int]:
    if not actor.is_human:
        raise Forbidden("only humans may lift holds")
    with transaction.atomic():
        hold = Hold.objects.select_for_update().filter(id=hold_id).first()
        if hold is None:
            raise NotFound(f"no hold {hold_id}")
        if hold.lifted_at is not None:
            raise Conflict(f"hold {hold_id} was already lifted by {hold.lifted_by}", lifted_at=iso(hold.lifted_at))
        hold.lifted_at = timezone.now()
        hold.lifted_by = actor.label
        hold.save(update_fields=["lifted_at", "lifted_by"])
        event = event_append(
            actor=actor,
            type="hold.lifted",
            namespace=resource_namespace(hold.resource),
            resource=hold.resource,
            summary=f"{actor.label} lifted the hold on {hold.resource}",
            before={"hold_id": hold.id, "placed_by": hold.placed_by, "reason": hold.reason},
            reason=reason,
        )
    return hold, event.seq


# A live waiter makes its last attempt at its deadline and closes its row then; one still open this
# long after its deadline belongs to a request that died with its server process (kill -9, OOM).
ABANDONED_WAIT_GRACE = timedelta(seconds=5)


def lock_waits_close_abandoned(*, now: datetime | None = None) -> int:
    """The sweeper: close the waits of requests that died, so `GET locks/` and the dashboard's
    contention charts do not count them as waiting forever. A wait changes no lock: no event."""
    now = now or timezone.now()
    return LockWait.objects.filter(ended_at=None, deadline__lt=now - ABANDONED_WAIT_GRACE).update(
        ended_at=now, outcome="abandoned"
    )
