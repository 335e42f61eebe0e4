"""Django admin for the inbox: read-only views of entries and receipts. Entries are sent and acked
through the API (services), so every change has its event; admin only looks."""

from django.contrib import admin

from .models import ContextEntry, Receipt


class ReadOnlyAdmin(admin.ModelAdmin):
    # The tables grow to millions of rows: no exact count on every changelist page.
    show_full_result_count = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReceiptInline(admin.TabularInline):
    model = Receipt
    fields = ("agent", "read_at", "acked_at", "ack_note", "entry_expired")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ContextEntry)
class ContextEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "sender",
        "from_role",
        "to_role",
        "to_agent",
        "context_type",
        "subject",
        "requires_ack",
        "expires_at",
        "expired_at",
    )
    list_filter = ("context_type", "from_role", "to_role", "requires_ack", ("expired_at", admin.EmptyFieldListFilter))
    search_fields = ("=id", "subject", "sender", "to_role", "to_agent__id", "context_type", "namespace")
    list_select_related = ("to_agent",)
    date_hierarchy = "created_at"
    ordering = ("-id",)
    readonly_fields = [field.name for field in ContextEntry._meta.fields]
    inlines = [ReceiptInline]


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ("id", "entry", "agent", "read_at", "acked_at", "ack_note", "entry_expired")
    list_filter = (
        ("read_at", admin.EmptyFieldListFilter),
        ("acked_at", admin.EmptyFieldListFilter),
        "entry_expired",
        "entry__context_type",
    )
    search_fields = ("=entry__id", "agent__id", "ack_note")
    list_select_related = ("entry", "agent")
    ordering = ("-id",)
    readonly_fields = [field.name for field in Receipt._meta.fields]
