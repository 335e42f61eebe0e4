"""The lock services other apps and the adapters call, gathered from the modules of this package (see
its docstring for what each holds, and the lock order)."""

from .acquire import (
    LOCK_FIELDS,
    LockGrant,
    LockRequest,
    lock_acquire,
    lock_request,
    lock_waits_close_abandoned,
)
from .alerts import lock_alerts_raise
from .holds import hold_covering, hold_lift, hold_place
from .models import MAX_RESOURCES, MAX_TTL_SECONDS
from .release import Release, leases_expire, leases_release_all, lock_force_release, lock_heartbeat, lock_release

__all__ = [
    "LOCK_FIELDS",
    "MAX_RESOURCES",
    "MAX_TTL_SECONDS",
    "LockGrant",
    "LockRequest",
    "Release",
    "hold_covering",
    "hold_lift",
    "hold_place",
    "leases_expire",
    "leases_release_all",
    "lock_acquire",
    "lock_alerts_raise",
    "lock_force_release",
    "lock_heartbeat",
    "lock_release",
    "lock_request",
    "lock_waits_close_abandoned",
]
