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
    # The lifecycle (README "Memory lifecycle"). Every write verifies; POST .../verify/ re-verifies.
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.CharField(max_length=160, blank=True)
    # When the sweeper last announced this memory stale (a `stale` context entry): once per period.
    stale_announced_at = models.DateTimeField(null=True, blank=True)
    # Valid time: a fact stops holding at valid_until, or when a later write supersedes it
    # ("<namespace>/<key>" of that memory). Either way it is kept, out of default reads and search.
    valid_until = models.DateTimeField(null=True, blank=True)
    superseded_by = models.CharField(max_length=600, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)
    # A summary's source episodes ("<namespace>/<key>" each); an episode summarized is archived.
    derived_from = models.JSONField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # Highest fencing token a write to this memory has presented (locked namespaces): an older one is refused.
    fencing_token = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["namespace", "key"]
        constraints = [models.UniqueConstraint(fields=["namespace", "key"], name="uniq_memory_namespace_key")]
        indexes = [
            models.Index(fields=["updated_by"], name="memory_updated_by"),
            models.Index(fields=["expires_at"], name="memory_expires_at"),
            models.Index(fields=["kind", "updated_at"], name="memory_kind_updated"),
            models.Index(fields=["kind", "verified_at"], name="memory_kind_verified"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.key} v{self.version}"

    @property
    def resource(self) -> str:
        return f"{self.namespace}/{self.key}"
