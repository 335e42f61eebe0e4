"""/events/: filters (actor, namespace, resource, type, time range), paging, and JSONL / CSV export of
exactly the filtered set."""

import csv
import io
import json
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.utils import timezone

from memoryhub.dashboard import selectors
from memoryhub.events.models import Event
from memoryhub.memories.services import memory_put


@pytest.fixture
def history(docs, sales):
    memory_put(actor=docs.actor, namespace="code:style", key="guide", content={"rule": "ruff"}, reason="style")
    memory_put(actor=docs.actor, namespace="code:review", key="pr-1", content={"ok": True})
    memory_put(actor=sales.actor, namespace="customer:acme", key="profile", content={"n": 1}, reason="=HYPERLINK(1)")
    return Event.objects.order_by("seq")


def seqs(response):
    return [event.seq for event in response.context["events"]]


def exported(staff, fmt, query=""):
    response = staff.get(f"/events/export.{fmt}{query}")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    return b"".join(response.streaming_content).decode()


def test_events_are_newest_first(staff, history):
    assert seqs(staff.get("/events/")) == sorted(history.values_list("seq", flat=True), reverse=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?actor=docs-1", {"code:style/guide", "code:review/pr-1"}),
        ("?namespace=code:*", {"code:style/guide", "code:review/pr-1"}),
        ("?namespace=customer:acme", {"customer:acme/profile"}),
        ("?resource=code:style/guide", {"code:style/guide"}),
        ("?type=memory.created&actor=sales-1", {"customer:acme/profile"}),
    ],
)
def test_filters_narrow_the_log(staff, history, query, expected):
    events = staff.get("/events/" + query).context["events"]
    assert {event.resource for event in events} == expected


def test_type_prefix_filter(staff, history):
    types = {event.type for event in staff.get("/events/?type=agent.*").context["events"]}
    assert types == {"agent.created"}


def test_time_range_filter(staff, history):
    # The log is append-only, so the range is cut between two real events instead of back-dating one.
    guide = Event.objects.get(resource="code:style/guide")
    review = Event.objects.get(resource="code:review/pr-1")
    assert guide.at < review.at
    cut = quote(review.at.isoformat())
    after = {e.resource for e in staff.get(f"/events/?start={cut}&namespace=code:*").context["events"]}
    assert after == {"code:review/pr-1"}
    before = staff.get(f"/events/?end={cut}&namespace=code:*")
    assert [e.resource for e in before.context["events"]] == ["code:style/guide"]
    # A closed range does not grow live; an open one does.
    assert before.context["live"] is False
    assert staff.get(f"/events/?start={cut}").context["live"] is True
    # A time typed without a zone, as the datetime-local input sends it, is UTC.
    typed = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert staff.get(f"/events/?start={typed}").context["events"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?start=yesterday", "not a date and time"),
        ("?start=2025-01-02T00:00&end=2025-01-01T00:00", "must be before"),
        ("?namespace=bad name", "namespace must be"),
    ],
)
def test_invalid_filters_are_a_clear_400(staff, history, query, message):
    response = staff.get("/events/" + query)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert staff.get("/events/export.csv" + query).status_code == 400


def test_paging_continues_before_the_last_seq_shown(staff, history, monkeypatch):
    from memoryhub.dashboard.views import events as view

    real = view.events_page
    monkeypatch.setattr(view, "events_page", lambda query, before=None: real(query, before=before, limit=2))
    first = staff.get("/events/?namespace=code:*")
    assert len(seqs(first)) == 2 and first.context["more"] is None
    page = staff.get("/events/")
    assert page.context["more"] == seqs(page)[-1]
    second = staff.get(f"/events/?before={page.context['more']}")
    assert seqs(second)[0] < seqs(page)[-1]


def test_jsonl_export_is_the_filtered_set_oldest_first(staff, history):
    lines = exported(staff, "jsonl", "?namespace=code:*").splitlines()
    *rows, trailer = [json.loads(line) for line in lines]
    assert [row["resource"] for row in rows] == ["code:style/guide", "code:review/pr-1"]
    assert trailer["export"]["complete"] is True and trailer["export"]["events"] == 2
    assert rows[0]["actor"] == {"kind": "agent", "id": "docs-1", "role": "docs"}
    assert rows[0]["after"] == {"rule": "ruff"} and rows[0]["reason"] == "style"


def test_csv_export_has_a_header_and_one_row_per_event(staff, history):
    text = exported(staff, "csv", "?type=memory.*")
    body, _, trailer = text.rstrip("\n").rpartition("\n")
    assert json.loads(trailer.removeprefix("# "))["complete"] is True
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["resource"] for row in rows] == ["code:style/guide", "code:review/pr-1", "customer:acme/profile"]
    assert rows[0]["actor_id"] == "docs-1" and json.loads(rows[0]["after"]) == {"rule": "ruff"}
    # A reason an agent wrote cannot become a spreadsheet formula.
    assert rows[2]["reason"] == "'=HYPERLINK(1)"


def test_unknown_export_format_is_404(staff, history):
    assert staff.get("/events/export.xml").status_code == 404


def test_export_ends_with_a_completeness_line_and_resumes_after_a_seq(staff, history, monkeypatch):
    """Batches smaller than the export: every event once, in order, then the line that says it is
    complete; `after_seq` (the last seq a cut-off export delivered) gives exactly the rest."""
    monkeypatch.setattr(
        "memoryhub.dashboard.export.events_export_batches",
        lambda query, **kw: selectors.events_export_batches(query, **{**kw, "batch": 1}),
    )
    *rows, trailer = [json.loads(line) for line in exported(staff, "jsonl", "").splitlines()]
    all_seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert [row["seq"] for row in rows] == all_seqs
    assert trailer == {"export": {"complete": True, "events": len(all_seqs), "after_seq": 0, "last_seq": all_seqs[-1]}}
    cut = all_seqs[1]
    *rest, again = [json.loads(line) for line in exported(staff, "jsonl", f"?after_seq={cut}").splitlines()]
    assert [row["seq"] for row in rest] == all_seqs[2:]
    assert again["export"]["complete"] is True and again["export"]["after_seq"] == cut


def test_a_failing_export_says_it_is_not_complete(staff, history, monkeypatch):
    def failing(query, **kw):
        yield from selectors.events_export_batches(query, **{**kw, "batch": 1})
        raise RuntimeError("database went away")

    monkeypatch.setattr("memoryhub.dashboard.export.events_export_batches", lambda query, **kw: failing(query, **kw))
    lines = [json.loads(line) for line in exported(staff, "jsonl", "").splitlines()]
    assert lines[-1]["export"]["complete"] is False
    assert lines[-1]["export"]["last_seq"] == lines[-2]["seq"]  # where to resume


def test_export_command_writes_the_same_lines_and_resumes(staff, history):
    out = io.StringIO()
    call_command("export_events", "--namespace", "code:*", stdout=out)
    *rows, trailer = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [row["resource"] for row in rows] == ["code:style/guide", "code:review/pr-1"]
    assert trailer["export"]["complete"] is True
    rest = io.StringIO()
    call_command("export_events", "--namespace", "code:*", "--after-seq", str(rows[0]["seq"]), stdout=rest)
    assert [json.loads(line).get("resource") for line in rest.getvalue().splitlines()] == ["code:review/pr-1", None]


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_export_is_sent_as_it_is_read(transactional_db, history, django_user_model, monkeypatch):
    """On daphne (where production routes exports) the response is an async stream taken a batch at
    a time, not a list Django reads whole before sending: every event once, then the last line."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    monkeypatch.setattr(
        "memoryhub.dashboard.export.events_export_batches",
        lambda query, **kw: selectors.events_export_batches(query, **{**kw, "batch": 1}),
    )
    user = django_user_model.objects.create_user("bob", password="pw", is_staff=True)

    async def export() -> tuple[bool, list[str]]:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get("/events/export.jsonl")
        assert response.status_code == 200
        return response.is_async, [chunk.decode() async for chunk in response.streaming_content]

    is_async, chunks = async_to_sync(export)()
    assert is_async
    *rows, trailer = [json.loads(line) for line in "".join(chunks).splitlines()]
    assert [row["seq"] for row in rows] == list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert trailer["export"]["complete"] is True
