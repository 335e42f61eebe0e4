"""The append-only provenance log: one Event per state change, written in the change's transaction."""

from django.db import models


class EventSequence(models.Model):
    """One row holding the last `seq` handed out.

    Appending an event increments it with UPDATE, which takes a row lock held until commit. So
    transactions that append events commit in seq order: a reader that has seen seq N will never later
    find a committed N-1, and rolled-back transactions give their numbers back (no gaps, no reuse).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last = models.BigIntegerField(default=0)


class Event(models.Model):
    seq = models.BigIntegerField(primary_key=True)
    type = models.CharField(max_length=40)
    at = models.DateTimeField()
    actor_kind = models.CharField(max_length=10)
    actor_id = models.CharField(max_length=150)
    actor_role = models.CharField(max_length=100, blank=True)
    namespace = models.CharField(max_length=255, blank=True)
    resource = models.CharField(max_length=600, blank=True)
    version = models.IntegerField(null=True, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    # Who may see this event besides readers of its namespace: "agent:<id>" / "role:<role>" entries,
    # e.g. the sender and recipients of a context entry.
    audience = models.JSONField(default=list, blank=True)
    # Every namespace the event touches when it touches more than `namespace` (a lock on resources of
    # several): it is visible only to callers who may read all of them. Null otherwise.
    namespaces = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]
        indexes = [
            # varchar_pattern_ops (PostgreSQL; ignored elsewhere): the same index serves equality and a
            # glob's literal prefix (LIKE 'ns:00%'), whatever the database's collation.
            models.Index(
                fields=["resource", "seq"], opclasses=["varchar_pattern_ops", "int8_ops"], name="event_resource_seq_p"
            ),
            models.Index(
                fields=["namespace", "seq"], opclasses=["varchar_pattern_ops", "int8_ops"], name="event_namespace_seq_p"
            ),
            # A memory's version (`?version=`, compare, revert) in one descent, however long its history.
            models.Index(fields=["resource", "version"], name="event_resource_version"),
            # Events of several namespaces (multi-resource locks): visibility and activity find them
            # by this index instead of by a scan. PostgreSQL also has a GIN index on `audience`
            # (migration 0004: jsonb_path_ops, which Django's Index cannot say portably).
            models.Index(fields=["seq"], condition=models.Q(namespaces__isnull=False), name="event_multi_namespace"),
            # Lock events without one resource (memoryhub.locks.events.MULTI_RESOURCE_TYPES): activity's branch.
            models.Index(
                fields=["seq"],
                condition=models.Q(
                    resource="",
                    type__in=[
                        "lock.acquired",
                        "lock.released",
                        "lock.expired",
                        "lock.force_released",
                        "alert.lock_wait",
                    ],
                ),
                name="event_multi_resource_lock",
            ),
            models.Index(fields=["type", "seq"], name="event_type_seq"),
            models.Index(fields=["actor_id", "seq"], name="event_actor_seq"),
            models.Index(fields=["at"], name="event_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type} {self.resource or self.namespace}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise RuntimeError("events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("events are append-only")

    @property
    def actor_label(self) -> str:
        return self.actor_id if self.actor_kind == "agent" else f"{self.actor_kind}:{self.actor_id}"
