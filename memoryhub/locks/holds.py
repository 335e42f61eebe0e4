"""Human holds: a human stops agents on a resource (a namespace, a memory, a lock name). Their memory
writes and lock requests there answer 423 and `activity/` tells every agent to defer, until the hold
is lifted. `hold_covering` is the one hold check: memory writes, lock acquisitions and activity ask it."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.context import Caller
from memoryhub.errors import Conflict, Forbidden, Held, NotFound
from memoryhub.events.services import event_append

from . import queries
from .models import Hold
from .names import check_resource, covering_names, resource_namespace
from .selectors import hold_visible, iso
from .waiting import announce_release


def hold_covering(*, actor: Actor | None, resources: Iterable[str]) -> Hold | None:
    """The hold in place on any of these resources, on one of their aliases or on their namespace (see
    `covering_names`). A Caller whose request started while no hold was in place needs no query."""
    if isinstance(actor, Caller) and actor.any_hold is False:
        return None
    names: set[str] = set()
    for resource in resources:
        names |= covering_names(resource)
    return queries.hold_on_any(sorted(names))


def held(*, actor: Actor, hold: Hold, asked: Iterable[str]) -> Held:
    """The 423 for an agent stopped by `hold` on the names it `asked` for. A caller that may see the
    hold (it may read the namespace held) is told which hold, by whom and why; any other caller (it
    may write there but not read, or the name denotes no namespace) only that what it asked for is
    held: nothing beyond what it sent."""
    covered = sorted(name for name in asked if hold.resource in covering_names(name))
    if hold_visible(actor, hold):
        return Held(
            f"{hold.resource} is held by {hold.placed_by}" + (f": {hold.reason}" if hold.reason else ""),
            hold=hold.resource,
            placed_by=hold.placed_by,
            reason=hold.reason,
        )
    return Held(f"{', '.join(covered)} {'is' if len(covered) == 1 else 'are'} held", resources=covered)


def hold_place(*, actor: Actor, resource: str, reason: str = "") -> tuple[Hold, int]:
    """A human stops agents on a resource until the hold is lifted."""
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
