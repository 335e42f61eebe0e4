"""Who is acting. Provenance comes from here (the authenticated caller), never from a request body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["agent", "human", "system"]


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: str
    role: str = ""

    @property
    def is_human(self) -> bool:
        return self.kind == "human"

    @property
    def is_agent(self) -> bool:
        return self.kind == "agent"

    @property
    def label(self) -> str:
        """One string naming the actor: agent ids as they are, humans as `human:<username>`."""
        return self.id if self.kind == "agent" else f"{self.kind}:{self.id}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "role": self.role}

    @classmethod
    def for_agent(cls, agent) -> Actor:
        return cls(kind="agent", id=agent.id, role=agent.role)

    @classmethod
    def for_user(cls, user) -> Actor:
        return cls(kind="human", id=user.get_username(), role="human")


SYSTEM = Actor(kind="system", id="system", role="system")
