from django.db import models
from django.db.models import Q


class TaskStatus(models.TextChoices):
    QUEUED = "queued"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


class Task(models.Model):
    role = models.CharField(max_length=100)
    kind = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.QUEUED)
    priority = models.IntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    claimed_by = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="claimed_tasks"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=160)
    idempotency_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.CharField(max_length=160, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # In the claim's order (priority DESC, id): the next task is the first index entry, no sort.
            models.Index(fields=["role", "-priority", "id"], condition=Q(status="queued"), name="task_queue_next"),
            models.Index(fields=["claim_expires_at"], condition=Q(status="claimed"), name="task_claim_expiry"),
            models.Index(fields=["status", "updated_at"], name="task_status_updated"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="uniq_task_idempotency",
            )
        ]

    def __str__(self) -> str:
        return f"task {self.id} {self.kind} ({self.status})"
