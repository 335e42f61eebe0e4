"""/locks/: active leases and who waits for them, contention per resource, human holds; force-release a
lease, place and lift holds."""

from __future__ import annotations

from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from memoryhub.locks.selectors import holds_list, leases_active, lock_contention
from memoryhub.locks.services import hold_lift, hold_place, lock_force_release

from ..access import human, staff_required
from ..forms import HoldForm, ReasonForm
from .common import override, page


def _render(request, *, status: int = 200, hold_form: HoldForm | None = None):
    actor = human(request)
    active = leases_active(actor=actor)
    return page(
        request,
        "dashboard/locks.html",
        {
            "nav": "locks",
            "leases": active["results"],
            "waiting": active["waiting"],
            "holds": holds_list(actor=actor, active=True),
            "contention": lock_contention(actor=actor, limit=20),
            "hold_form": hold_form or HoldForm(),
        },
        status=status,
        page_url=reverse("dashboard:locks"),
    )


@require_GET
@staff_required
def lock_list(request):
    return _render(request)


@require_POST
@staff_required
def lease_force_release(request, lease_id: int):
    def call(data) -> str:
        release = lock_force_release(actor=human(request), lease_id=lease_id, reason=data["reason"])
        return f"Lease {lease_id} of {release.lease.agent_id} on {', '.join(release.lease.resources)} force-released."

    return override(
        request,
        form=ReasonForm(request.POST),
        call=call,
        back=reverse("dashboard:locks"),
        show=lambda code: _render(request, status=code),
    )


@require_POST
@staff_required
def hold_create(request):
    form = HoldForm(request.POST)

    def call(data) -> str:
        hold, _ = hold_place(actor=human(request), resource=data["resource"].strip(), reason=data["reason"])
        return f"Hold placed on {hold.resource}: agents' writes and locks there are refused until it is lifted."

    return override(
        request,
        form=form,
        call=call,
        back=reverse("dashboard:locks"),
        show=lambda code: _render(request, status=code, hold_form=form),
    )


@require_POST
@staff_required
def hold_remove(request, hold_id: int):
    def call(data) -> str:
        hold, _ = hold_lift(actor=human(request), hold_id=hold_id, reason=data["reason"])
        return f"Hold on {hold.resource} lifted."

    return override(
        request,
        form=ReasonForm(request.POST),
        call=call,
        back=reverse("dashboard:locks"),
        show=lambda code: _render(request, status=code),
    )
