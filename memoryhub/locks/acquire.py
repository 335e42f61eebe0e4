"""Acquiring locks: a request validated once, attempts each in one transaction (see the package
docstring for the lock order), and the wait between attempts, never inside one."""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from memoryhub.actors import SYSTEM, Actor
from memoryhub.agents.guard import agent_lock_active
from memoryhub.errors import Forbidden, HubError, Invalid, LockHeld
from memoryhub.events.services import NewEvent, events_append
from policies.decide import decide_write
from policies.selectors import policies_for

from . import queries
from .events import lease_event, lease_state
from .holds import held, hold_covering
from .models import (
    HOLDER_TOKEN_RE,
    MAX_RESOURCES,
    MAX_TTL_SECONDS,
    Hold,
    Lease,
    LockMode,
    LockResource,
    LockWait,
    holder_digest,
)
from .names import check_resource, covering_names, resource_namespace
from .release import lease_expire
from .selectors import iso, lease_visible
from .waiting import notifier


@dataclass(frozen=True)
class _Holding:
    """An active LeaseResource row (a lease holding one of the requested resources) with its lease."""

    resource: str
    mode: str
    lease: Lease


def _holder(row: _Holding, actor: Actor) -> dict[str, Any]:
    """A blocking lease as the refused caller is told it: who holds it and which lease, only if the
    caller may see that lease (lock names follow their namespace, see selectors.lease_visible);
    otherwise only the name it asked for and that it is held."""
    if not lease_visible(actor, row.lease):
        return {"resource": row.resource, "agent": None, "lease_id": None, "mode": row.mode, "expires_at": None}
    return {
        "resource": row.resource,
        "agent": row.lease.agent_id,
        "lease_id": row.lease.id,
        "mode": row.mode,
        "expires_at": iso(row.lease.expires_at),
    }


@dataclass(frozen=True)
class LockGrant:
    lease: Lease
    seq: int
    reentered: bool = False
    waited_ms: int = 0
    holder_token: str = ""  # the proof of holding, for the response (never stored: see Lease.holder_digest)


@dataclass
class LockRequest:
    """A validated acquisition, possibly spanning several attempts while it waits."""

    actor: Actor
    names: list[str]
    mode: str
    ttl_seconds: int
    wait_seconds: float = 0
    # The proof of holding: a lease of the caller's on the same names whose digest it matches is
    # re-entered; any other is a contender's. Chosen by the hub at the grant when the caller sent none.
    holder_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
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
        agents = sorted({h["agent"] for h in self.holders if h["agent"]})
        return LockHeld(
            f"{', '.join(sorted({h['resource'] for h in self.holders}))} held"
            + (f" by {', '.join(agents)}" if agents else ""),
            holders=self.holders,
            waited_ms=int((time.monotonic() - self.started) * 1000),
        )


# The fields of a lock request body, and which of them may be left out.
LOCK_FIELDS = {"resources": True, "mode": False, "ttl_seconds": True, "wait_seconds": False, "holder_token": False}
_INTEGRAL = re.compile(r"-?\d+(\.0*)?")


def _number(value: Any, *, integral: bool) -> int | float | None:
    """A JSON number (or its text, as forms send it) as DRF's IntegerField/FloatField accept it; None
    for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if integral and value.is_integer() else (value if not integral else None)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if integral:
            return int(float(text)) if _INTEGRAL.fullmatch(text) else None
        try:
            number = float(text)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def lock_request(
    *,
    actor: Actor,
    resources: Any,
    mode: Any = LockMode.EXCLUSIVE,
    ttl_seconds: Any = 30,
    wait_seconds: Any = 0,
    holder_token: Any = None,
) -> LockRequest:
    """The one validator of an acquisition, for every adapter (REST bodies arrive here as parsed):
    names, mode, limits, and (for `memory:` resources) that the caller may write the memory's
    namespace, so no agent can block writers of a domain it has no part in."""
    if not actor.is_agent:
        raise Forbidden("only agents hold locks; humans place holds (POST holds/)")
    if not isinstance(resources, list) or not resources:
        raise Invalid("resources must be a non-empty list of names", resources=["must be a non-empty list"])
    if len(resources) > MAX_RESOURCES:
        raise Invalid(f"at most {MAX_RESOURCES} resources per lock", resources=["too many"])
    names = sorted({check_resource(name, "resources") for name in resources})
    if mode not in LockMode.values:
        raise Invalid(f"mode must be one of {LockMode.values}", mode=["invalid choice"])
    ttl = _number(ttl_seconds, integral=True)
    if ttl is None or not 1 <= ttl <= MAX_TTL_SECONDS:
        raise Invalid(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}", ttl_seconds=["out of range"])
    wait = _number(wait_seconds, integral=False)
    max_wait = settings.MEMORYHUB_MAX_LOCK_WAIT_SECONDS
    if wait is None or not 0 <= wait <= max_wait:
        raise Invalid(f"wait_seconds must be between 0 and {max_wait}", wait_seconds=["out of range"])
    if holder_token is not None and not (isinstance(holder_token, str) and HOLDER_TOKEN_RE.match(holder_token)):
        raise Invalid(
            "holder_token is the token an acquisition returned: 16-128 letters, digits, '_' or '-'",
            holder_token=["invalid holder token"],
        )
    memory_names = [name for name in names if name.startswith("memory:")]
    if memory_names:
        policies = policies_for(actor)
        for name in memory_names:
            decision = decide_write(policies, actor, resource_namespace(name))
            if not decision.allowed:
                raise Forbidden(f"{name}: {decision.reason}", resource=name, **decision.details())
    request = LockRequest(actor=actor, names=names, mode=str(mode), ttl_seconds=int(ttl), wait_seconds=wait)
    if holder_token is not None:
        request.holder_token = holder_token
    return request


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
        agent_lock_active(actor=actor)
        # The hold check is asked on every attempt (a hold placed while this request waits refuses it),
        # in the row-lock statement; with no row yet to carry it, on its own.
        locked, hold_id = queries.resources_lock(names, covering=covering)
        if not locked:
            hold = hold_covering(actor=None, resources=names)
            hold_id = hold.id if hold else None
        if hold_id is not None:
            raise held(actor=actor, hold=Hold.objects.get(id=hold_id), asked=names)
        if len(locked) < len(names):
            raise _NewResources([name for name in names if name not in locked])
        rows = [
            _Holding(resource=resource, mode=mode, lease=lease) for lease, resource, mode in queries.holdings_of(names)
        ]
        # Read the clock only now that the holdings are read: a release reads its clock before it
        # commits, so a grant that saw it committed is stamped after it (read before the holdings, a
        # grant could start before the release it waited for ended), and time spent queueing on the
        # rows does not make the expiry check look into the past.
        now = timezone.now()
        expired: list[NewEvent] = []
        if any(row.lease.expires_at <= now for row in rows):
            # A lapsed lease is free at once: expire it here (its holder may be releasing or
            # heartbeating it right now, hence the lease row lock and the re-check).
            lapsed = sorted({row.lease.id for row in rows if row.lease.expires_at <= now})
            expired = [
                lease_expire(lease, now, locked)
                for lease in Lease.objects.select_for_update()
                .filter(id__in=lapsed, released_at=None, expires_at__lte=now)
                .order_by("id")
            ]
            rows = [row for row in rows if row.lease.expires_at > now]

        # Re-entry needs the proof of holding, not only the agent id (several processes may run as
        # one agent): another lease of the caller's is a contender's like any other.
        digest = holder_digest(request.holder_token)
        for lease in {row.lease.id: row.lease for row in rows if row.lease.agent_id == actor.id}.values():
            compatible = lease.mode == LockMode.EXCLUSIVE or request.mode == LockMode.SHARED
            proven = bool(lease.holder_digest) and hmac.compare_digest(lease.holder_digest, digest)
            if sorted(lease.resources) == names and compatible and proven:
                return _reenter(request, lease_id=lease.id, now=now, expired=expired)

        conflicts = [row for row in rows if request.mode == LockMode.EXCLUSIVE or row.mode == LockMode.EXCLUSIVE]
        if conflicts:
            request.holders = [_holder(row, actor) for row in conflicts]
            request.blockers_expire_at = min(row.lease.expires_at for row in conflicts)
            _record_refusal(request, conflicts=conflicts, now=now, final=final)
            if expired:
                events_append(actor=SYSTEM, events=expired)  # not the caller's change: no key claimed
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
        holder_digest=holder_digest(request.holder_token),
    )
    waited_ms = request.waited_ms
    lease.id = lease.fencing_token = queries.lease_insert(lease, waited_ms=waited_ms if request.wait_id else None)
    if request.wait_id:
        LockWait.objects.filter(id=request.wait_id).update(ended_at=now, outcome="granted", lease=lease)
    acquired = lease_event(
        "lock.acquired",
        lease,
        summary=f"{actor.label} acquired a {request.mode} lock on {', '.join(names)} for {request.ttl_seconds}s",
        after=lease_state(lease) | ({"waited_ms": waited_ms} if waited_ms else {}),
    )
    event = events_append(actor=actor, events=[*expired, acquired])[-1]
    return LockGrant(lease=lease, seq=event.seq, waited_ms=waited_ms, holder_token=request.holder_token)


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
            lease_event(
                "lock.acquired",
                lease,
                summary=f"{request.actor.label} re-entered lease {lease.id} on {', '.join(lease.resources)} "
                f"(depth {lease.depth})",
                after=lease_state(lease) | {"reentered": True, "fencing_token": lease.fencing_token},
            ),
        ],
    )[-1]
    return LockGrant(
        lease=lease, seq=event.seq, reentered=True, waited_ms=request.waited_ms, holder_token=request.holder_token
    )


def lock_wait[T](request: LockRequest, attempt: Callable[[bool], T | None]) -> T:
    """The wait loop, written once: `attempt(final)` makes one try in a transaction of its own and
    returns None when refused. Between tries it sleeps until a release of one of the resources
    commits (this process or, on PostgreSQL, any), the first blocking lease is due to expire, or the
    deadline; a bounded re-check is the safety net. The last try is `final` (its refusal is counted
    and ends the wait); a refusal of it is `request.refusal()`."""
    subscription = notifier.subscribe(request.names) if request.wait_seconds else None
    try:
        while True:
            final = request.next_wait() is None
            if subscription:
                subscription.clear()  # before the attempt: a release committed after it wakes us
            result = attempt(final)
            if result is not None:
                return result
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


def lock_acquire(
    *,
    actor: Actor,
    resources: Any,
    mode: str = "exclusive",
    ttl_seconds: int = 30,
    wait_seconds: float = 0,
    holder_token: str | None = None,
) -> LockGrant:
    """Acquire all the resources at once, or raise LockHeld (409) with the holders after waiting up to
    `wait_seconds` (between transactions, never inside one: see `lock_wait`). A caller re-enters a
    lease it holds (same names) only with its `holder_token`, which the grant returns."""
    request = lock_request(
        actor=actor,
        resources=resources,
        mode=mode,
        ttl_seconds=ttl_seconds,
        wait_seconds=wait_seconds,
        holder_token=holder_token,
    )
    if request.wait_seconds and connection.in_atomic_block:
        raise RuntimeError("waiting for a lock needs autocommit: other writers must be able to release it")
    return lock_wait(request, lambda final: lock_attempt(request, final=final))


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
