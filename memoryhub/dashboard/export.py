"""Exports of the event log as JSON Lines or CSV, for the dashboard's streamed download and the
`export_events` command: keyset batches (never one materialised query), oldest first, and a final
line that says whether the export is complete and where to resume (`after_seq`)."""

from __future__ import annotations

import csv
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async

from memoryhub.events.selectors import last_seq
from memoryhub.events.serializers import event_to_dict

from .selectors import events_export_batches

log = logging.getLogger(__name__)

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


def export_lines(query, *, after: int, fmt: str) -> Iterator[str]:
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


async def chunks_async(lines: Iterator[str], *, size: int = 500) -> AsyncIterator[str]:
    """The lines for an ASGI server, `size` at a time, each taken in the request's own thread (its
    database connection). Django would otherwise read a plain iterator whole before sending a byte."""
    take = sync_to_async(lambda: "".join(itertools.islice(lines, size)), thread_sensitive=True)
    while chunk := await take():
        yield chunk
