"""Admin views of locks and holds: read-only lists; changes go through the services (and so leave
events), via the actions below."""

from django.contrib import admin, messages

from memoryhub.actors import Actor
from memoryhub.errors import HubError

from .models import Hold, Lease, LockResource, LockWait
from .services import hold_lift, lock_force_release


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def run_each(modeladmin, request, queryset, call, verb: str) -> None:
    done = 0
    for obj in queryset:
        try:
            call(obj)
            done += 1
        except HubError as error:
            modeladmin.message_user(request, f"{obj}: {error.message}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done}.", messages.SUCCESS)


@admin.register(Lease)
class LeaseAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "agent",
        "mode",
        "resources",
        "fencing_token",
        "depth",
        "acquired_at",
        "expires_at",
        "released_at",
        "release_reason",
    )
    list_filter = ("mode", "release_reason", ("released_at", admin.EmptyFieldListFilter))
    search_fields = ("agent__id", "resources")
    date_hierarchy = "acquired_at"
    actions = ["force_release"]

    @admin.action(description="Force-release selected leases")
    def force_release(self, request, queryset):
        actor = Actor.for_user(request.user)
        run_each(
            self,
            request,
            queryset.filter(released_at=None),
            lambda lease: lock_force_release(actor=actor, lease_id=lease.id, reason="force-released in admin"),
            "Force-released",
        )


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("id", "resource", "placed_by", "reason", "placed_at", "lifted_at", "lifted_by")
    list_filter = (("lifted_at", admin.EmptyFieldListFilter),)
    search_fields = ("resource", "placed_by", "reason")
    actions = ["lift"]

    @admin.action(description="Lift selected holds")
    def lift(self, request, queryset):
        actor = Actor.for_user(request.user)
        run_each(
            self,
            request,
            queryset.filter(lifted_at=None),
            lambda hold: hold_lift(actor=actor, hold_id=hold.id, reason="lifted in admin"),
            "Lifted",
        )


@admin.register(LockResource)
class LockResourceAdmin(ReadOnlyAdmin):
    list_display = ("name", "acquired_count", "denied_count", "waited_count", "expired_count", "wait_ms_total")
    search_fields = ("name",)
    ordering = ("-denied_count", "-waited_count", "name")


@admin.register(LockWait)
class LockWaitAdmin(ReadOnlyAdmin):
    list_display = ("id", "agent", "mode", "resources", "started_at", "expected_until", "ended_at", "outcome")
    list_filter = ("outcome", "mode")
    search_fields = ("agent__id", "resources")
