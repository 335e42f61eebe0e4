"""/events/: the provenance log with filters (actor, namespace, resource, type, time range), newest
first, live; the filtered set exported as JSON Lines or CSV (streamed, oldest first, in keyset batches,
ending with a line that says it is complete: `{"export": {"complete": true, "events": N, "after_seq": A,
"last_seq": S}}`, in CSV `# {...}`; `after_seq=S` resumes an export that was cut off after seq S)."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator

from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from memoryhub.events.selectors import last_seq
from memoryhub.events.serializers import event_to_dict

from ..access import staff_required
from ..forms import EventFilterForm
from ..selectors import agent_ids, event_types, events_export_batches, events_page
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
log = logging.getLogger(__name__)
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


def _event_row(event) -> list:
    row = event_to_dict(event)
    actor = row.pop("actor")
    row |= {"actor_kind": actor["kind"], "actor_id": actor["id"], "actor_role": actor["role"]}
    for name in ("before", "after"):
        row[name] = "" if row[name] is None else json.dumps(row[name], ensure_ascii=False, default=str)
    return [_csv_cell(row[column]) if isinstance(row[column], str) else row[column] for column in CSV_COLUMNS]


def _export(query, *, after: int, fmt: str) -> Iterator[str]:
    """The export's lines, then one that says whether it is complete. A stream cut off (a timeout, a
    dropped connection) has no final line; one that failed says so and where to resume: `after_seq`
    with the last seq delivered gives the rest."""
    end = last_seq()
    writer = csv.writer(_Echo())
    if fmt == "csv":
        yield writer.writerow(CSV_COLUMNS)
    count, position = 0, after
    trailer: dict = {"complete": True}
    try:
        for rows in events_export_batches(query, after=after, end=end):
            for event in rows:
                if fmt == "csv":
                    yield writer.writerow(_event_row(event))
                else:
                    yield json.dumps(event_to_dict(event), ensure_ascii=False, default=str) + "\n"
            count += len(rows)
            position = rows[-1].seq
    except Exception:
        log.exception("event export failed after seq %s", position)
        trailer = {"complete": False, "error": "the export failed; resume with after_seq"}
    trailer |= {"events": count, "after_seq": after, "last_seq": position if not trailer["complete"] else end}
    if fmt == "csv":
        yield "# " + json.dumps(trailer) + "\n"
    else:
        yield json.dumps({"export": trailer}) + "\n"


@require_GET
@staff_required
def event_export(request, fmt: str):
    if fmt not in ("jsonl", "csv"):
        raise Http404("export as .jsonl or .csv")
    form = EventFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(form_errors(form), content_type="text/plain; charset=utf-8")
    lines = _export(form.query(), after=form.cleaned_data.get("after_seq") or 0, fmt=fmt)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    content_type = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    response = StreamingHttpResponse(lines, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="memoryhub-events-{stamp}.{fmt}"'
    return response
