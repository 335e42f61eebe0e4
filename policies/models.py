"""Who may read and write each namespace, which role owns which field, and who defers to whom.

Rows are changed only through policies.services (so every change is a `policy.changed` event);
decisions are made by the pure functions in policies.decide.
"""

from django.db import models


class WriteMode(models.TextChoices):
    OPTIMISTIC = "optimistic", "optimistic (If-Match required)"
    LAST_WRITE_WINS = "last_write_wins", "last write wins"
    LOCKED = "locked", "locked (exclusive lock + fencing token)"


class NamespacePolicy(models.Model):
    pattern = models.CharField(
        max_length=255, unique=True, help_text="Glob on namespaces: `code:*`, `agent:private:*`."
    )
    readers = models.JSONField(
        default=list, help_text='Role names; "*" = every role; "self" = the agent named by the trailing *.'
    )
    writers = models.JSONField(default=list, help_text="Same form as readers.")
    write_mode = models.CharField(max_length=20, choices=WriteMode.choices, default=WriteMode.OPTIMISTIC)
    default_ttl_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_content_bytes = models.PositiveIntegerField(null=True, blank=True)
    # The memory lifecycle (README "Memory lifecycle"): semantic memory not verified for this long is
    # stale; episodic memory older than this is summarized (by the `summarizer` role's agents, else
    # built in); search's recency half-life for memories of this namespace.
    stale_after_seconds = models.PositiveIntegerField(null=True, blank=True)
    episodic_summarize_after_seconds = models.PositiveIntegerField(null=True, blank=True)
    summarizer = models.CharField(max_length=100, blank=True)
    recency_half_life_seconds = models.PositiveIntegerField(null=True, blank=True)
    description = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pattern"]
        verbose_name = "namespace policy"
        verbose_name_plural = "namespace policies"

    def __str__(self) -> str:
        return self.pattern


class FieldOwnership(models.Model):
    namespace = models.CharField(max_length=255, help_text="Glob on namespaces.")
    field = models.CharField(max_length=255, help_text="A top-level key of a memory's content.")
    owners = models.JSONField(default=list, help_text="Roles that may change this field.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["namespace", "field"]
        constraints = [models.UniqueConstraint(fields=["namespace", "field"], name="uniq_field_ownership")]
        verbose_name_plural = "field ownership"

    def __str__(self) -> str:
        return f"{self.namespace} .{self.field}"


class DeferenceRule(models.Model):
    resource = models.CharField(max_length=255, help_text="Glob on resources or namespaces: `customer:*`.")
    role = models.CharField(max_length=100)
    defers_to = models.CharField(max_length=100)
    window_seconds = models.PositiveIntegerField(default=300)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["resource", "role", "defers_to"]
        constraints = [models.UniqueConstraint(fields=["resource", "role", "defers_to"], name="uniq_deference_rule")]

    def __str__(self) -> str:
        return f"{self.role} defers to {self.defers_to} on {self.resource}"
