"""What `with hub.lock(...)` and `async with hub.lock(...)` share: the heartbeat loop and the release,
as steps (see `_base`). The sync context runs the heartbeat in a thread, the async one in a task; both
provide `_pause(seconds)`, which answers False once the holder has let go."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._base import Steps, retriable
from .errors import HubError, LeaseExpired, NotFound
from .models import Lease


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
        return self.client.acquire(self.resources, ttl=self.ttl, mode=self.mode, wait=self.wait)

    def _pause(self, seconds: float) -> Any:  # pragma: no cover - provided by the subclasses
        raise NotImplementedError

    def _beats(self) -> Steps[None]:
        """Renew the lease every `every` s while it is held."""
        assert self.lease is not None
        while (yield self._pause(self.every)):
            try:
                renewed = yield self.client.heartbeat_lock(self.lease.id, ttl=self.ttl)
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
            yield self.client.release(self.lease.id)
        except (LeaseExpired, NotFound):
            self.lease.lost = True
