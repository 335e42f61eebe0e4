from django.db import models


class MemoryKind(models.TextChoices):
    WORKING = "working"
    EPISODIC = "episodic"
    SEMANTIC = "semantic"


class Memory(models.Model):
    """The current state of one JSON object at (namespace, key). Every version is also an Event, so
    the past is rebuilt from the log; a deleted or expired memory stays as a tombstone so versions
    keep counting up if it is written again."""

    namespace = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=MemoryKind.choices, default=MemoryKind.SEMANTIC)
    content = models.JSONField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    size_bytes = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=160)
    updated_by = models.CharField(max_length=160)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # Highest fencing token a write to this memory has presented (locked namespaces): an older one is refused.
    fencing_token = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["namespace", "key"]
        constraints = [models.UniqueConstraint(fields=["namespace", "key"], name="uniq_memory_namespace_key")]
        indexes = [
            models.Index(fields=["updated_by"], name="memory_updated_by"),
            models.Index(fields=["expires_at"], name="memory_expires_at"),
            models.Index(fields=["kind", "updated_at"], name="memory_kind_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.key} v{self.version}"

    @property
    def resource(self) -> str:
        return f"{self.namespace}/{self.key}"
