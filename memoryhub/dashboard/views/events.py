"""/events/: the provenance log with filters (actor, namespace, resource, type, time range), newest
first, live; the filtered set exported as JSON Lines or CSV (streamed, oldest first, in keyset batches,
ending with a line that says it is complete: `{"export": {"complete": true, "events": N, "after_seq": A,
"last_seq": S}}`, in CSV `# {...}`; `after_seq=S` resumes an export that was cut off after seq S)."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from ..access import staff_required
from ..export import chunks_async, export_lines
from ..forms import EventFilterForm
from ..selectors import agent_ids, event_types, events_page
from .common import form_errors, page


@require_GET
@staff_required
def event_list(request):
    form = EventFilterForm(request.GET)
    events, more, status = [], None, 200
    if form.is_valid():
        events, more = events_page(form.query(), before=form.cleaned_data.get("before"))
    else:
        status = 400
    filters = request.GET.copy()
    filters.pop("before", None)
    data = form.cleaned_data if form.is_valid() else {}
    return page(
        request,
        "dashboard/events.html",
        {
            "nav": "events",
            "form": form,
            "events": events,
            "more": more,
            "filters": filters.urlencode(),
            "agents": agent_ids(),
            "types": event_types(),
            # New events appear live only on the first page, and only if the range is still open.
            "live": form.is_valid() and not data.get("before") and not data.get("end_at"),
            "query": form.query() if form.is_valid() else None,
        },
        status=status,
    )


@require_GET
@staff_required
def event_export(request, fmt: str):
    if fmt not in ("jsonl", "csv"):
        raise Http404("export as .jsonl or .csv")
    form = EventFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(form_errors(form), content_type="text/plain; charset=utf-8")
    lines = export_lines(form.query(), after=form.cleaned_data.get("after_seq") or 0, fmt=fmt)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    content_type = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    # On daphne (production routes exports there: no worker timeout cuts a long one) the export is
    # sent as it is read; on a WSGI worker it streams until the worker's timeout, then has no last line.
    streamed = chunks_async(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(streamed, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="memoryhub-events-{stamp}.{fmt}"'
    return response
