import hashlib
import re

from django.db import models
from django.db.models import Q

HOLDER_TOKEN_RE = re.compile(r"\A[A-Za-z0-9_-]{16,128}\Z")  # \Z: `$` lets a final newline through


def holder_digest(token: str) -> str:
    """What a lease keeps of its holder token (Lease.holder_digest)."""
    return hashlib.sha256(token.encode()).hexdigest()


class LockMode(models.TextChoices):
    EXCLUSIVE = "exclusive"
    SHARED = "shared"


class LockResource(models.Model):
    """One row per resource ever locked. Acquirers lock these rows FOR UPDATE in name order (the one
    global order that makes deadlock impossible) and keep contention counters on them."""

    name = models.CharField(primary_key=True, max_length=600)
    acquired_count = models.PositiveBigIntegerField(default=0)
    denied_count = models.PositiveBigIntegerField(default=0)
    waited_count = models.PositiveBigIntegerField(default=0)
    expired_count = models.PositiveBigIntegerField(default=0)
    wait_ms_total = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return self.name


# What one acquisition may ask for.
MAX_RESOURCES = 50
MAX_TTL_SECONDS = 24 * 3600


class Lease(models.Model):
    """A TTL lease on one or more resources, held by one agent. Its fencing token is its own id
    (migration 0003), drawn under the resource row locks: unique, and rising strictly for every
    resource (see the package docstring)."""

    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="leases")
    mode = models.CharField(max_length=10, choices=LockMode.choices)
    resources = models.JSONField()
    fencing_token = models.BigIntegerField(default=0)
    ttl_seconds = models.PositiveIntegerField()
    depth = models.PositiveIntegerField(default=1, help_text="Re-entrant acquisitions not yet released.")
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.CharField(max_length=20, blank=True)  # released | expired | force_released | suspended
    alerted_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 (hex) of the holder token returned at acquisition, the proof a re-entry must present: the
    # agent id alone names every process running as that agent. Leases granted before it have none
    # (and cannot be re-entered).
    holder_digest = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["released_at", "expires_at"], name="lease_active_expiry")]

    def __str__(self) -> str:
        return f"lease {self.id} {self.mode} {self.resources} by {self.agent_id}"

    @property
    def is_active(self) -> bool:
        from django.utils import timezone

        return self.released_at is None and self.expires_at > timezone.now()


class LeaseResource(models.Model):
    lease = models.ForeignKey(Lease, on_delete=models.CASCADE, related_name="held")
    resource = models.CharField(max_length=600)
    mode = models.CharField(max_length=10, choices=LockMode.choices)
    active = models.BooleanField(default=True)

    class Meta:
        indexes = [models.Index(fields=["resource", "active"], name="leaseresource_resource_active")]
        constraints = [
            # The database, not only Python, keeps one exclusive holder per resource.
            models.UniqueConstraint(
                fields=["resource"], condition=Q(active=True, mode="exclusive"), name="one_exclusive_holder"
            )
        ]


class Hold(models.Model):
    """A human's hold on a resource (a namespace, a `<namespace>/<key>` or a lock resource): agents'
    writes and locks there answer 423 and every agent defers until it is lifted."""

    resource = models.CharField(max_length=600)
    placed_by = models.CharField(max_length=160)
    reason = models.TextField(blank=True)
    placed_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=160, blank=True)

    class Meta:
        ordering = ["-placed_at"]
        constraints = [
            models.UniqueConstraint(fields=["resource"], condition=Q(lifted_at=None), name="one_active_hold")
        ]

    def __str__(self) -> str:
        return f"hold on {self.resource} by {self.placed_by}"


class LockWait(models.Model):
    """An acquisition waiting (`wait_seconds`) for resources others hold: shown by `GET locks/`, and
    alerted on when it lasts more than twice its expected duration (the time until the blocking
    leases' expiry when the wait began)."""

    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="lock_waits")
    mode = models.CharField(max_length=10, choices=LockMode.choices)
    resources = models.JSONField()
    blocked_by = models.JSONField(default=list, help_text="Lease ids blocking the wait when it began.")
    started_at = models.DateTimeField()
    expected_until = models.DateTimeField(help_text="When the blocking leases were due to expire.")
    deadline = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, blank=True)  # granted | timeout | refused | abandoned
    lease = models.ForeignKey(Lease, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["ended_at", "deadline"], name="lockwait_open")]

    def __str__(self) -> str:
        return f"wait {self.id} {self.mode} {self.resources} by {self.agent_id}"

    @property
    def expected_seconds(self) -> float:
        return max((self.expected_until - self.started_at).total_seconds(), 0.0)
