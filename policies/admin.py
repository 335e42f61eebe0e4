"""Django admin for policies. Saving and deleting go through policies.services, so every admin edit
is a `policy.changed` event with the admin as actor."""

from django import forms
from django.contrib import admin, messages

from memoryhub.actors import Actor
from memoryhub.errors import Invalid

from .models import DeferenceRule, FieldOwnership, NamespacePolicy
from .services import KINDS, key_of, kind_of, policy_remove, policy_write


class RoleListField(forms.CharField):
    """A list of role names typed as `sales, support` (or `*`, `self`)."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        return [part.strip() for part in (value or "").split(",") if part.strip()]


class ServiceBackedAdmin(admin.ModelAdmin):
    role_fields: tuple[str, ...] = ()

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in self.role_fields:
            return RoleListField(required=False, help_text=db_field.help_text or "Comma-separated role names.")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        previous = None
        if change:
            previous = key_of(type(obj).objects.get(pk=obj.pk))
        values = {f.name: getattr(obj, f.name) for f in obj._meta.fields}
        try:
            policy_write(
                actor=Actor.for_user(request.user),
                kind=kind_of(type(obj)),
                values=values,
                previous_key=previous,
                reason="edited in admin",
            )
        except Invalid as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        # Admin's "saved" message links to the object: point obj at the row the service wrote.
        stored = type(obj).objects.filter(**dict(zip(KINDS[kind_of(type(obj))].key_fields, key_of(obj), strict=True)))
        obj.pk = stored.values_list("pk", flat=True).first()

    def delete_model(self, request, obj):
        policy_remove(
            actor=Actor.for_user(request.user),
            kind=kind_of(type(obj)),
            key=key_of(obj),
            reason="deleted in admin",
        )

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(NamespacePolicy)
class NamespacePolicyAdmin(ServiceBackedAdmin):
    role_fields = ("readers", "writers")
    list_display = (
        "pattern",
        "readers",
        "writers",
        "write_mode",
        "default_ttl_seconds",
        "max_content_bytes",
        "updated_at",
    )
    list_filter = ("write_mode",)
    search_fields = ("pattern", "description")


@admin.register(FieldOwnership)
class FieldOwnershipAdmin(ServiceBackedAdmin):
    role_fields = ("owners",)
    list_display = ("namespace", "field", "owners", "updated_at")
    search_fields = ("namespace", "field")


@admin.register(DeferenceRule)
class DeferenceRuleAdmin(ServiceBackedAdmin):
    list_display = ("resource", "role", "defers_to", "window_seconds", "updated_at")
    list_filter = ("role", "defers_to")
    search_fields = ("resource", "role", "defers_to")
