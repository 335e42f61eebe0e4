"""Which events a caller may see: its own, those addressed to it or its role, and those in namespaces
it may read (humans see all). An event touching several namespaces (`Event.namespaces`) needs every
one of them readable. The one rule: the REST log, activity, the websocket and the dashboard ask it."""

from __future__ import annotations

from memoryhub.actors import Actor
from policies.decide import PolicySet, decide_read


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

    def visible_row(self, event) -> bool:
        return self.visible(
            namespace=event.namespace,
            namespaces=event.namespaces,
            actor_kind=event.actor_kind,
            actor_id=event.actor_id,
            audience=event.audience,
        )
