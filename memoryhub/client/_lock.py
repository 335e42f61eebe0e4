"""What `with hub.lock(...)` and `async with hub.lock(...)` share: the heartbeat loop and the release,
as steps (see `_base`). The sync context runs the heartbeat in a thread, the async one in a task; both
provide `_pause(seconds)`, which answers False once the holder has let go."""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, NamedTuple

from ._base import Steps, _resources, retriable
from .errors import HubError, LeaseExpired, NotFound
from .models import Lease


class _Held(NamedTuple):
    client: Any
    names: tuple[str, ...]
    mode: str
    holder_token: str


# The leases `lock()` holds in this thread or task (a child task inherits its parent's): a nested
# `lock()` of the same client on the same resources re-enters with their holder token. Another
# thread, task or process sharing the agent's token has none to present, and waits like anyone else.
_HELD: ContextVar[tuple[_Held, ...]] = ContextVar("memoryhub_held_locks", default=())


class Hold:
    def __init__(
        self, client: Any, resources: str | Iterable[str], *, ttl: int, mode: str, wait: float, every: float | None
    ) -> None:
        self.client = client
        self.resources = resources
        self.ttl, self.mode, self.wait = ttl, mode, wait
        self.every = every or max(ttl / 3, 0.2)
        self.lease: Lease | None = None

    def _acquire(self) -> Any:
        names = tuple(sorted(set(_resources(self.resources))))
        held = next(
            (
                entry.holder_token
                for entry in _HELD.get()
                if entry.client is self.client
                and entry.names == names
                and (entry.mode == "exclusive" or self.mode == "shared")
            ),
            None,
        )
        return self.client.acquire(self.resources, ttl=self.ttl, mode=self.mode, wait=self.wait, holder_token=held)

    def _entered(self) -> None:
        """The lease is ours: nested `lock()`s in this thread or task may re-enter it."""
        assert self.lease is not None and self.lease.holder_token
        self._held = _Held(
            self.client, tuple(sorted(set(self.lease.resources))), self.lease.mode, self.lease.holder_token
        )
        _HELD.set((*_HELD.get(), self._held))

    def _left(self) -> None:
        _HELD.set(tuple(entry for entry in _HELD.get() if entry is not self._held))

    def _pause(self, seconds: float) -> Any:  # pragma: no cover - provided by the subclasses
        raise NotImplementedError

    def _beats(self) -> Steps[None]:
        """Renew the lease every `every` s while it is held."""
        assert self.lease is not None
        while (yield self._pause(self.every)):
            try:
                renewed = yield self.client.heartbeat_lock(
                    self.lease.id, ttl=self.ttl, holder_token=self.lease.holder_token
                )
            except HubError as exc:
                if not retriable(exc):
                    self.lease.lost = True  # lapsed, force-released, or its agent suspended
                    return
                # The hub was unreachable for a while: keep trying while the lease may still be alive.
            else:
                self.lease.expires_at = renewed.expires_at

    def _release(self) -> Steps[None]:
        assert self.lease is not None
        if self.lease.lost:
            return
        try:
            yield self.client.release(self.lease.id, holder_token=self.lease.holder_token)
        except (LeaseExpired, NotFound):
            self.lease.lost = True
