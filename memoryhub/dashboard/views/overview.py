"""/: the overview. Agents and their state, the live event feed, inbox backlog per role, active locks,
and conflicts and lock contention over time."""

from __future__ import annotations

from django.views.decorators.http import require_GET

from memoryhub.locks.selectors import leases_active

from ..access import human, staff_required
from ..forms import RangeForm
from ..selectors import activity_timeline, agents_overview, inbox_backlog, recent_events
from .common import page


@require_GET
@staff_required
def overview(request):
    form = RangeForm(request.GET)
    range_key = form.cleaned_data.get("range") if form.is_valid() else ""
    active = leases_active(actor=human(request), limit=50)
    timeline = activity_timeline(range_key=range_key or "1h")
    rows = agents_overview()
    return page(
        request,
        "dashboard/overview.html",
        {
            "nav": "overview",
            "range_form": form,
            "rows": rows,
            "suspended": sum(1 for row in rows if row["agent"].is_suspended),
            "events": recent_events(limit=30),
            "backlog": inbox_backlog(),
            "leases": active["results"],
            "waiting": active["waiting"],
            "timeline": timeline,
            # The table under the charts (their text alternative) lists the intervals with activity.
            "timeline_rows": [
                row
                for row in zip(
                    timeline["labels"],
                    timeline["conflicts"],
                    timeline["lock_waits"],
                    timeline["lock_timeouts"],
                    timeline["lock_expired"],
                    timeline["lock_alerts"],
                    strict=True,
                )
                if any(row[1:])
            ],
        },
    )
