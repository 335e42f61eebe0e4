"""/agents/: every agent, its state and load; suspend (the kill switch) and resume with a reason."""

from __future__ import annotations

from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from memoryhub.agents.services import agent_set_status

from ..access import human, staff_required
from ..forms import ReasonForm
from ..selectors import agents_overview
from .common import override, page


def _render(request, *, status: int = 200):
    return page(
        request,
        "dashboard/agents.html",
        {"rows": agents_overview(), "nav": "agents"},
        status=status,
        page_url=reverse("dashboard:agents"),
    )


@require_GET
@staff_required
def agent_list(request):
    return _render(request)


def _set_status(request, agent_id: str, status: str, verb: str):
    def call(data) -> str:
        agent, seq = agent_set_status(actor=human(request), agent_id=agent_id, status=status, reason=data["reason"])
        if not seq:
            return f"{agent.id} was already {agent.status}."
        return f"{agent.id} {verb}." + (
            " Its locks were released and its task claims requeued." if status == "suspended" else ""
        )

    return override(
        request,
        form=ReasonForm(request.POST),
        call=call,
        back=reverse("dashboard:agents"),
        show=lambda code: _render(request, status=code),
    )


@require_POST
@staff_required
def agent_suspend(request, agent_id: str):
    return _set_status(request, agent_id, "suspended", "suspended")


@require_POST
@staff_required
def agent_resume(request, agent_id: str):
    return _set_status(request, agent_id, "active", "resumed")
