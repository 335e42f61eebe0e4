"""/events/: the provenance log with filters (actor, namespace, resource, type, time range), newest
first, live; the filtered set exported as JSON Lines or CSV (streamed, oldest first)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from memoryhub.events.serializers import event_to_dict

from ..access import staff_required
from ..forms import EventFilterForm
from ..selectors import agent_ids, event_types, events_filtered, events_page
from .common import form_errors, page

CSV_COLUMNS = [
    "seq",
    "type",
    "at",
    "actor_kind",
    "actor_id",
    "actor_role",
    "namespace",
    "resource",
    "version",
    "summary",
    "reason",
    "idempotency_key",
    "before",
    "after",
]
# A cell starting with one of these is a formula to a spreadsheet: agents write summaries and reasons,
# so such cells are prefixed with ' (OWASP's advice against CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def _csv_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _jsonl(events) -> Iterator[str]:
    for event in events.iterator(chunk_size=1000):
        yield json.dumps(event_to_dict(event), ensure_ascii=False, default=str) + "\n"


def _csv(events) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=1000):
        row = event_to_dict(event)
        actor = row.pop("actor")
        row |= {"actor_kind": actor["kind"], "actor_id": actor["id"], "actor_role": actor["role"]}
        for name in ("before", "after"):
            row[name] = "" if row[name] is None else json.dumps(row[name], ensure_ascii=False, default=str)
        yield writer.writerow(
            [_csv_cell(row[column]) if isinstance(row[column], str) else row[column] for column in CSV_COLUMNS]
        )


@require_GET
@staff_required
def event_export(request, fmt: str):
    if fmt not in ("jsonl", "csv"):
        raise Http404("export as .jsonl or .csv")
    form = EventFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(form_errors(form), content_type="text/plain; charset=utf-8")
    events = events_filtered(form.query())
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "jsonl":
        response = StreamingHttpResponse(_jsonl(events), content_type="application/x-ndjson; charset=utf-8")
    else:
        response = StreamingHttpResponse(_csv(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="memoryhub-events-{stamp}.{fmt}"'
    return response
