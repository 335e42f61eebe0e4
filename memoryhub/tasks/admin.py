"""Admin view of tasks: read-only list; requeue and cancel go through the services (and leave events)."""

from django.contrib import admin

from memoryhub.actors import Actor
from memoryhub.locks.admin import ReadOnlyAdmin, run_each

from .models import Task
from .services import task_cancel, task_requeue


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "role",
        "kind",
        "status",
        "priority",
        "attempts",
        "max_attempts",
        "claimed_by",
        "claim_expires_at",
        "created_by",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "role", "kind")
    search_fields = ("kind", "role", "created_by", "idempotency_key", "claimed_by__id")
    date_hierarchy = "created_at"
    actions = ["requeue", "cancel"]

    @admin.action(description="Requeue selected tasks")
    def requeue(self, request, queryset):
        actor = Actor.for_user(request.user)
        run_each(
            self,
            request,
            queryset,
            lambda task: task_requeue(actor=actor, task_id=task.id, reason="requeued in admin"),
            "Requeued",
        )

    @admin.action(description="Cancel selected tasks")
    def cancel(self, request, queryset):
        actor = Actor.for_user(request.user)
        run_each(
            self,
            request,
            queryset,
            lambda task: task_cancel(actor=actor, task_id=task.id, reason="cancelled in admin"),
            "Cancelled",
        )
