"""Which events a caller may see: its own, those addressed to it or its role, and those in namespaces
it may read (humans see all). An event touching several namespaces (`Event.namespaces`) needs every
one of them readable. The one rule: the REST log, activity, the websocket and the dashboard ask it.
Its own writes to a namespace it may write but not read are shown without their content
(`before`/`after`): they hold what other writers wrote."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Q, TextField
from django.db.models.functions import Cast

from memoryhub.actors import Actor
from policies.decide import PolicySet, decide_read
from policies.readable import readable_q

from .serializers import event_to_dict


def holds_content(type: str) -> bool:
    """Events whose before/after hold a memory's content (a refusal's, its current state)."""
    return type.startswith("memory.") or type == "conflict.rejected"


def frame_without_content(frame: str) -> str:
    """A websocket event frame with its `before`/`after` emptied."""
    message = json.loads(frame)
    message["event"]["before"] = message["event"]["after"] = None
    return json.dumps(message)


def visible_q(actor: Actor, policies: PolicySet, *, vendor: str) -> Q:
    """A SQL condition true for every event `EventFilter.visible` lets the caller see (and few more), so
    a scan reads only rows it will show: its own events, those addressed to it or its role, and those
    in namespaces it may read (readable_q, index ranges). An event of several namespaces is let
    through here and decided row by row (it needs all of them readable): the rows are few."""
    if actor.kind in ("human", "system"):
        return Q()
    condition = Q(actor_kind=actor.kind, actor_id=actor.id) | Q(namespaces__isnull=False)
    for label in (f"agent:{actor.id}", f"role:{actor.role}"):
        if vendor == "postgresql":
            condition |= Q(audience__contains=[label])  # jsonb @>, the event_audience GIN index
        else:
            # SQLite's JSON1 has no containment: the stored text holds the quoted label.
            condition |= Q(audience_text__contains=json.dumps(label))
    return condition | (Q(namespaces__isnull=True) & readable_q(policies, actor, vendor=vendor))


def with_audience_text(queryset, vendor: str):
    """The queryset visible_q filters, with the alias the SQLite form of it needs."""
    return queryset if vendor == "postgresql" else queryset.alias(audience_text=Cast("audience", TextField()))


class EventFilter:
    """Decides visibility of many events for one caller, caching per namespace."""

    def __init__(self, actor: Actor, policies: PolicySet) -> None:
        self.actor = actor
        self.policies = policies
        self._namespaces: dict[str, bool] = {}
        self._audience = {f"agent:{actor.id}", f"role:{actor.role}"}

    def reset(self, policies: PolicySet) -> None:
        self.policies = policies
        self._namespaces.clear()

    def namespace_readable(self, namespace: str) -> bool:
        if namespace not in self._namespaces:
            self._namespaces[namespace] = decide_read(self.policies, self.actor, namespace).allowed
        return self._namespaces[namespace]

    def visible(
        self,
        *,
        namespace: str,
        actor_kind: str,
        actor_id: str,
        audience: list[str] | None,
        namespaces: list[str] | None = None,
    ) -> bool:
        if self.actor.kind in ("human", "system"):
            return True
        if actor_kind == "agent" and actor_id == self.actor.id:
            return True
        if audience and not self._audience.isdisjoint(audience):
            return True
        return all(bool(name) and self.namespace_readable(name) for name in (namespaces or [namespace]))

    def hides_content(self, *, type: str, namespace: str) -> bool:
        """Whether a visible event must be shown without before/after: a memory event in a namespace
        the caller may not read, which it sees because it is its own."""
        return self.actor.kind == "agent" and holds_content(type) and not self.namespace_readable(namespace)

    def shown(self, event) -> dict[str, Any]:
        """A visible event as the caller is shown it."""
        shown = event_to_dict(event)
        if self.hides_content(type=event.type, namespace=event.namespace):
            shown["before"] = shown["after"] = None
        return shown

    def visible_row(self, event) -> bool:
        return self.visible(
            namespace=event.namespace,
            namespaces=event.namespaces,
            actor_kind=event.actor_kind,
            actor_id=event.actor_id,
            audience=event.audience,
        )
