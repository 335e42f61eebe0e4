"""Django admin for agents and their tokens. Every change goes through memoryhub.agents.services, so
it is an event with the admin as actor: creating an agent (its first token shown once), suspending
and resuming it (the kill switch), rotating, issuing and revoking tokens. Tokens are stored hashed:
a new one is shown once, in a message, and never again."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from memoryhub.actors import Actor
from memoryhub.errors import HubError

from .models import AGENT_ID_RE, ROLE_RE, Agent, AgentStatus, AgentToken, token_digest
from .services import agent_create, agent_set_status, token_revoke, token_rotate


def _show_token(modeladmin, request, agent_id: str, token: str) -> None:
    modeladmin.message_user(
        request,
        format_html(
            "New token for <strong>{}</strong> (shown once, copy it now): <code>{}</code>",
            agent_id,
            token,
        ),
        messages.WARNING,
    )


class AgentTokenInline(admin.TabularInline):
    model = AgentToken
    fields = ("prefix", "label", "created_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class AgentCreationForm(forms.ModelForm):
    id = forms.RegexField(regex=AGENT_ID_RE, label="Id (its name)", max_length=100)
    role = forms.RegexField(regex=ROLE_RE, max_length=100)

    class Meta:
        model = Agent
        fields = ("id", "role", "description")


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("id", "role", "status_badge", "last_seen_at", "active_tokens", "status_changed_at", "created_at")
    list_filter = ("status", "role")
    search_fields = ("id", "role", "description", "status_reason")
    ordering = ("id",)
    date_hierarchy = "created_at"
    inlines = [AgentTokenInline]
    actions = ["suspend", "resume", "rotate_token"]
    readonly_fields = (
        "id",
        "role",
        "status",
        "status_reason",
        "status_changed_at",
        "last_seen_at",
        "created_at",
        "description",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(active_token_count=Count("tokens", filter=Q(tokens__revoked_at=None)))
        )

    @admin.display(description="active tokens", ordering="active_token_count")
    def active_tokens(self, obj):
        return obj.active_token_count

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        colour = "#17602f" if obj.status == AgentStatus.ACTIVE else "#a11a1a"
        return format_html('<strong style="color:{}">{}</strong>', colour, obj.status)

    # Creating goes through agent_create (event + first token); afterwards the row is read-only:
    # status changes are the actions below, which are the kill switch with its side effects.
    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = AgentCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return  # every field is read-only once created
        try:
            agent, token = agent_create(
                actor=Actor.for_user(request.user),
                agent_id=form.cleaned_data["id"],
                role=form.cleaned_data["role"],
                description=form.cleaned_data.get("description") or "",
            )
        except HubError as error:
            self.message_user(request, error.message, messages.ERROR)
            request.agent_create_failed = True
            return
        obj.pk = agent.pk
        obj._state.adding = False
        _show_token(self, request, agent.id, token)

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "agent_create_failed", False):
            return HttpResponseRedirect(reverse("admin:agents_agent_add"))
        return super().response_add(request, obj, post_url_continue)

    def has_delete_permission(self, request, obj=None):
        return False  # provenance names agents: suspend instead

    def _each(self, request, queryset, call, verb: str) -> None:
        done = 0
        for agent in queryset:
            try:
                if call(agent):
                    done += 1
            except HubError as error:
                self.message_user(request, f"{agent.id}: {error.message}", messages.ERROR)
        self.message_user(request, f"{verb} {done} agent{'s' if done != 1 else ''}.", messages.SUCCESS)

    @admin.action(description="Suspend selected agents (releases their locks, requeues their claims)")
    def suspend(self, request, queryset):
        actor = Actor.for_user(request.user)
        self._each(
            request,
            queryset,
            lambda agent: agent_set_status(
                actor=actor, agent_id=agent.id, status="suspended", reason="suspended in admin"
            )[1],
            "Suspended",
        )

    @admin.action(description="Resume selected agents")
    def resume(self, request, queryset):
        actor = Actor.for_user(request.user)
        self._each(
            request,
            queryset,
            lambda agent: agent_set_status(actor=actor, agent_id=agent.id, status="active", reason="resumed in admin")[
                1
            ],
            "Resumed",
        )

    @admin.action(description="Rotate token (revoke the old ones, show the new one once)")
    def rotate_token(self, request, queryset):
        actor = Actor.for_user(request.user)

        def rotate(agent) -> bool:
            token = token_rotate(actor=actor, agent_id=agent.id, label="rotated in admin")
            _show_token(self, request, agent.id, token)
            return True

        self._each(request, queryset, rotate, "Rotated the token of")


class TokenCreationForm(forms.ModelForm):
    class Meta:
        model = AgentToken
        fields = ("agent", "label")


@admin.register(AgentToken)
class AgentTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "agent", "label", "created_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "agent__role")
    search_fields = ("prefix", "agent__id", "label")
    list_select_related = ("agent",)
    date_hierarchy = "created_at"
    actions = ["revoke"]
    readonly_fields = ("agent", "prefix", "label", "created_at", "revoked_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = TokenCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:
            return
        # An extra token for the agent (the others stay valid): issued by the service, shown once.
        token = token_rotate(
            actor=Actor.for_user(request.user),
            agent_id=form.cleaned_data["agent"].id,
            label=form.cleaned_data.get("label") or "admin",
            revoke_existing=False,
        )
        _show_token(self, request, form.cleaned_data["agent"].id, token)
        obj.pk = AgentToken.objects.get(digest=token_digest(token)).pk
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row records that the token existed

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        actor = Actor.for_user(request.user)
        count = 0
        for token in queryset.filter(revoked_at=None):
            token_revoke(actor=actor, token_id=token.id)
            count += 1
        self.message_user(request, f"Revoked {count} token{'s' if count != 1 else ''}.", messages.SUCCESS)
