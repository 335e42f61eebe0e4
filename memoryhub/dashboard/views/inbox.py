"""/inbox/: context entries by recipient role and agent with every recipient's receipt, the backlog
per role, and acking on behalf of an agent (its receipt is acked; the event names the human)."""

from __future__ import annotations

from django.http import QueryDict
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from contexts.services import context_ack

from ..access import human, staff_required
from ..forms import AckForm, InboxFilterForm
from ..selectors import agent_ids, context_types, inbox_backlog, inbox_entries, roles_known
from .common import override, page


def _render(request, *, status: int = 200, params=None):
    form = InboxFilterForm(params if params is not None else request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    if not form.is_valid() and status == 200:
        status = 400
    entries, more = inbox_entries(
        to_role=(data.get("to_role") or "").strip(),
        agent=(data.get("agent") or "").strip(),
        state=data.get("state") or "all",
        context_type=(data.get("context_type") or "").strip(),
        before=data.get("before"),
    )
    filters = (params if params is not None else request.GET).copy()
    filters.pop("before", None)
    return page(
        request,
        "dashboard/inbox.html",
        {
            "nav": "inbox",
            "form": form,
            "entries": entries,
            "more": more,
            "filters": filters.urlencode(),
            "backlog": inbox_backlog(),
            "roles": roles_known(),
            "agents": agent_ids(),
            "types": context_types(),
        },
        status=status,
        page_url=None if request.method == "GET" else reverse("dashboard:inbox"),
    )


@require_GET
@staff_required
def inbox(request):
    return _render(request)


@require_POST
@staff_required
def ack_on_behalf(request, entry_id: int):
    def call(data) -> str:
        receipt, event = context_ack(
            actor=human(request), entry_id=entry_id, note=data["note"], on_behalf_of=data["agent"]
        )
        if event is None:
            return f"#{entry_id} was already acked by {receipt.agent_id}; nothing changed."
        return f"Acked #{entry_id} on behalf of {receipt.agent_id}."

    return override(
        request,
        form=AckForm(request.POST),
        call=call,
        back=reverse("dashboard:inbox"),
        show=lambda code: _render(request, status=code, params=QueryDict()),
    )
