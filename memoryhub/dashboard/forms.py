"""Forms of the dashboard: filters (GET) and overrides (POST). Overrides always ask for a reason, which
becomes the `reason` of the event the service appends."""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.utils.dateparse import parse_datetime

from memoryhub.api.parsers import loads as strict_json_loads
from memoryhub.errors import Invalid
from memoryhub.memories.content import check_names
from memoryhub.memories.models import MemoryKind
from memoryhub.tasks.models import TaskStatus

from .selectors import INBOX_STATES, RANGES, EventQuery


class ReasonField(forms.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 2000)
        kwargs.setdefault("label", "Reason")
        kwargs.setdefault("error_messages", {"required": "Give a reason: it is recorded with the change."})
        super().__init__(**kwargs)


class ReasonForm(forms.Form):
    reason = ReasonField()


class MemoryEditForm(forms.Form):
    content = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        label="Content (a JSON object)",
        max_length=2_000_000,
    )
    kind = forms.ChoiceField(choices=[("", "keep")] + list(MemoryKind.choices), required=False)
    reason = ReasonField()
    # The version the editor started from: the service refuses the edit if the memory moved on.
    version = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean_content(self):
        raw = self.cleaned_data["content"]
        try:
            value = strict_json_loads(raw)  # the API's rules: no NUL, no NaN, bounded depth
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}")
        except Invalid as error:
            raise forms.ValidationError(error.message)
        if not isinstance(value, dict):
            raise forms.ValidationError("The content must be a JSON object ({...}).")
        return value


class RevertForm(forms.Form):
    version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    current = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    reason = ReasonField()


class HoldForm(forms.Form):
    resource = forms.CharField(
        max_length=600,
        help_text="A namespace (customer:acme), a memory (customer:acme/profile) or a lock resource.",
    )
    reason = ReasonField()


class AckForm(forms.Form):
    agent = forms.CharField(max_length=100, widget=forms.HiddenInput)
    note = ReasonField(label="Note")


# --- filters --------------------------------------------------------------------------------------------


def _moment(raw: str, name: str) -> datetime | None:
    """A time typed in the filter (`2025-01-31T14:00`, ISO with or without offset); naive means UTC."""
    if not raw:
        return None
    try:
        value = parse_datetime(raw.strip().replace(" ", "T", 1))
    except ValueError:
        value = None
    if value is None:
        raise forms.ValidationError(f"{name}: not a date and time (use YYYY-MM-DD HH:MM, UTC).")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class EventFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150, label="Actor (agent id or username)")
    namespace = forms.CharField(required=False, max_length=255, help_text="A namespace or a glob: customer:*")
    resource = forms.CharField(required=False, max_length=600)
    type = forms.CharField(required=False, max_length=40, help_text="A type or a prefix: memory.*")
    start = forms.CharField(
        required=False, label="From (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    end = forms.CharField(
        required=False, label="Until (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    before = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput)
    # Exports: resume after this seq (the last one a cut-off export delivered).
    after_seq = forms.IntegerField(required=False, min_value=0, max_value=2**63 - 1, widget=forms.HiddenInput)

    def clean_namespace(self):
        value = self.cleaned_data["namespace"].strip()
        if value:
            try:
                check_names(value.replace("*", "x"))
            except Invalid as error:
                raise forms.ValidationError(error.message)
        return value

    def clean(self):
        data = super().clean()
        data["start_at"] = _moment(data.get("start") or "", "From")
        data["end_at"] = _moment(data.get("end") or "", "Until")
        if data["start_at"] and data["end_at"] and data["start_at"] >= data["end_at"]:
            raise forms.ValidationError("“From” must be before “Until”.")
        return data

    def query(self) -> EventQuery:
        data = self.cleaned_data
        return EventQuery(
            actor=data["actor"].strip(),
            namespace=data["namespace"],
            resource=data["resource"].strip(),
            type=data["type"].strip(),
            start=data["start_at"],
            end=data["end_at"],
        )


class MemorySearchForm(forms.Form):
    namespace = forms.CharField(required=False, max_length=255, help_text="A namespace or a glob: customer:*")
    q = forms.CharField(required=False, max_length=1000, label="Search words or meaning")
    mode = forms.ChoiceField(
        choices=[("hybrid", "words + meaning"), ("lexical", "words only"), ("semantic", "meaning only")],
        required=False,
        label="Match by",
    )
    kind = forms.ChoiceField(choices=[("", "any kind")] + list(MemoryKind.choices), required=False)
    updated_by = forms.CharField(required=False, max_length=160, label="Last written by")
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    cursor = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)

    def clean_namespace(self):
        value = self.cleaned_data["namespace"].strip()
        if value:
            try:
                check_names(value.replace("*", "x"))
            except Invalid as error:
                raise forms.ValidationError(error.message)
        return value


class TaskFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "any status")] + list(TaskStatus.choices), required=False)
    role = forms.CharField(required=False, max_length=100)
    kind = forms.CharField(required=False, max_length=100)
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class InboxFilterForm(forms.Form):
    to_role = forms.CharField(required=False, max_length=100, label="Role (its inbox)")
    agent = forms.CharField(required=False, max_length=100, label="Received by agent")
    state = forms.ChoiceField(
        choices=[(s, {"all": "all", "unread": "unread", "unacked": "awaiting ack"}[s]) for s in INBOX_STATES],
        required=False,
    )
    context_type = forms.CharField(required=False, max_length=100, label="Type")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class RangeForm(forms.Form):
    range = forms.ChoiceField(choices=[(key, r.name) for key, r in RANGES.items()], required=False)


class AccessCheckForm(forms.Form):
    role = forms.CharField(required=False, max_length=100)
    agent = forms.CharField(required=False, max_length=100, label="Agent id (for “self” rules)")
    namespace = forms.CharField(required=False, max_length=255)

    def clean_namespace(self):
        value = self.cleaned_data["namespace"].strip()
        if value:
            try:
                check_names(value)
            except Invalid as error:
                raise forms.ValidationError(error.message)
        return value
