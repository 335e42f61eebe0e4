"""The memory lifecycle (issue 14): semantic memory stays verified (staleness under a policy,
announced once per period, re-verified), facts are superseded rather than overwritten (valid time
beside the log's transaction time), working memory belongs to a task or expires."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client

from contexts.models import ContextEntry
from memoryhub import times
from memoryhub.actors import SYSTEM
from memoryhub.errors import Invalid
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory
from memoryhub.memories.selectors import stale_counts, stale_memories
from memoryhub.memories.services import stale_announce
from memoryhub.times import iso
from policies.selectors import policy_set
from policies.services import parse_document, policies_apply
from tests.conftest import TEST_POLICIES

from .conftest import put, url

PERIOD = 60
FACTS = {
    "pattern": "facts:*",
    "readers": ["*"],
    "writers": ["sales", "support", "*"],
    "write_mode": "last_write_wins",
    "stale_after_seconds": PERIOD,
}


@pytest.fixture
def facts(db, make_agent):
    policies_apply(actor=SYSTEM, document={**TEST_POLICIES, "namespaces": [*TEST_POLICIES["namespaces"], FACTS]})
    return make_agent("sales-1", "sales"), make_agent("support-1", "support")


def verified_at(namespace: str, key: str):
    return Memory.objects.get(namespace=namespace, key=key).verified_at


def at(moment):
    return times.clock_at(lambda: moment)


def search(client, q: str, **params):
    response = client.get("/api/v1/search/", {"q": q, "mode": "lexical", **params})
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- semantic memory stays verified ----------------------------------------------------------------


def test_every_write_verifies_and_staleness_flips_at_the_boundary(facts):
    sales, _ = facts
    assert put(sales, "facts:acme", "hq", {"city": "Lyon"}).status_code == 201
    written = verified_at("facts:acme", "hq")
    body = sales.client.get(url("facts:acme", "hq")).json()
    assert (body["verified_at"], body["verified_by"], body["stale"]) == (iso(written), "sales-1", False)

    boundary = written + timedelta(seconds=PERIOD)
    with at(boundary - timedelta(microseconds=1)):
        assert sales.client.get(url("facts:acme", "hq")).json()["stale"] is False
        assert [m["stale"] for m in sales.client.get("/api/v1/memories/?namespace=facts:acme").json()["results"]] == [
            False
        ]
        assert [m["stale"] for m in search(sales.client, "Lyon")] == [False]
    with at(boundary):
        assert sales.client.get(url("facts:acme", "hq")).json()["stale"] is True
        assert [m["stale"] for m in sales.client.get("/api/v1/memories/?namespace=facts:acme").json()["results"]] == [
            True
        ]
        assert [m["stale"] for m in search(sales.client, "Lyon")] == [True]
        assert search(sales.client, "Lyon", fresh="true") == []


def test_a_stale_memory_ranks_below_a_fresh_one(facts):
    sales, _ = facts
    put(sales, "facts:acme", "old", {"note": "Lyon Lyon Lyon office"})
    written = verified_at("facts:acme", "old")
    with at(written + timedelta(seconds=PERIOD - 1)):
        put(sales, "facts:acme", "new", {"note": "Lyon office"})
    with at(written + timedelta(seconds=PERIOD - 1)):
        assert [m["key"] for m in search(sales.client, "Lyon")] == ["old", "new"]  # relevance decides
    with at(written + timedelta(seconds=PERIOD)):
        assert [(m["key"], m["stale"]) for m in search(sales.client, "Lyon")] == [("new", False), ("old", True)]


def test_a_stale_memory_is_announced_only_to_writer_roles_that_may_read_it(db, make_agent):
    # A write-only role (a drop box) may not learn the key names and verifiers of what it cannot read.
    drop = {**FACTS, "pattern": "drop:*", "readers": ["sales"], "writers": ["sales", "courier"]}
    policies_apply(actor=SYSTEM, document={**TEST_POLICIES, "namespaces": [*TEST_POLICIES["namespaces"], drop]})
    sales, _courier = make_agent("sales-1", "sales"), make_agent("courier-1", "courier")
    put(sales, "drop:box", "parcel", {"to": "Lyon"})
    assert stale_announce(now=verified_at("drop:box", "parcel") + timedelta(seconds=PERIOD)) == 1
    assert list(ContextEntry.objects.filter(context_type="stale").values_list("to_role", flat=True)) == ["sales"]
    assert Event.objects.get(type="memory.stale").after["announced_to"] == ["sales"]


def test_a_stale_memory_is_announced_once_per_period_and_verify_clears_it(facts, human):
    sales, _ = facts
    put(sales, "facts:acme", "hq", {"city": "Lyon"})
    written = verified_at("facts:acme", "hq")

    def entries(role):
        return ContextEntry.objects.filter(context_type="stale", to_role=role).count()

    assert stale_announce(now=written + timedelta(seconds=PERIOD - 1)) == 0
    assert stale_announce(now=written + timedelta(seconds=PERIOD)) == 1
    assert stale_announce(now=written + timedelta(seconds=PERIOD + 30)) == 0  # same period: not again
    assert (entries("sales"), entries("support")) == (1, 1)
    entry = ContextEntry.objects.filter(to_role="sales").get()
    assert entry.content["key"] == "hq" and "verify" in entry.content["action"]
    assert stale_announce(now=written + timedelta(seconds=2 * PERIOD)) == 1  # the next period
    assert (entries("sales"), entries("support")) == (2, 2)
    assert Event.objects.filter(type="memory.stale", resource="facts:acme/hq").count() == 2

    # Counted in /metrics and listed on the dashboard while stale (these read the real clock: go past it).
    later = written + timedelta(seconds=2 * PERIOD + 10)
    with at(later):
        assert "memoryhub_memories_stale" in Client().get("/metrics").content.decode()

    with at(later):
        response = sales.client.post(url("facts:acme", "hq", "verify/"), {"reason": "called them"}, format="json")
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["version"], body["stale"], body["verified_by"]) == (1, False, "sales-1")
        assert sales.client.get(url("facts:acme", "hq")).json()["stale"] is False
    memory = Memory.objects.get(namespace="facts:acme", key="hq")
    assert (memory.version, memory.verified_at, memory.stale_announced_at) == (1, later, None)
    verified = Event.objects.get(type="memory.verified")
    assert (verified.version, verified.reason) == (1, "called them")
    assert stale_announce(now=later + timedelta(seconds=PERIOD - 1)) == 0  # fresh for a new period
    assert stale_announce(now=later + timedelta(seconds=PERIOD)) == 1


def test_stale_memories_under_a_more_specific_rule_never_fill_the_page(db, make_agent):
    # facts:vip:* is slower to go stale: its memories, oldest verified first, must not take the
    # rows a page of facts:* reads and leave the page empty while a stale fact waits.
    vip = {**FACTS, "pattern": "facts:vip:*", "stale_after_seconds": 100 * PERIOD}
    policies_apply(actor=SYSTEM, document={**TEST_POLICIES, "namespaces": [*TEST_POLICIES["namespaces"], FACTS, vip]})
    sales = make_agent("sales-1", "sales")
    for index in range(4):
        put(sales, "facts:vip:acme", f"k{index}", {"n": index})
    put(sales, "facts:acme", "hq", {"city": "Lyon"})
    now = verified_at("facts:acme", "hq") + timedelta(seconds=PERIOD)
    policies = policy_set()

    assert [m.key for m in stale_memories(policies=policies, now=now, limit=3)] == ["hq"]
    assert stale_counts(policies=policies, now=now) == {"facts:acme": 1}
    assert stale_announce(now=now, limit=3) == 1


def test_the_dashboard_lists_stale_knowledge_and_a_human_reverifies_it(facts, human):
    sales, _ = facts
    put(sales, "facts:acme", "hq", {"city": "Lyon"})
    Memory.objects.filter(key="hq").update(verified_at=times.now() - timedelta(seconds=PERIOD + 1))
    page = human.get("/stale/").content.decode()
    assert "facts:acme/hq" in page and "Verify" in page
    assert "memoryhub_memories_stale 1.0" in Client().get("/metrics").content.decode()
    response = human.post("/stale/facts:acme/hq/verify/", {"reason": "still true"})
    assert response.status_code == 303
    assert "No stale knowledge." in human.get("/stale/").content.decode()
    assert Memory.objects.get(key="hq").verified_by == "human:alice"
    assert "memoryhub_memories_stale 0.0" in Client().get("/metrics").content.decode()


def test_verify_needs_write_access_and_a_live_memory(facts, make_agent):
    sales, _ = facts
    docs = make_agent("docs-1", "docs")
    put(sales, "customer:acme", "profile", {"name": "Acme"})
    assert docs.client.post(url("customer:acme", "profile", "verify/")).status_code == 403
    assert sales.client.post(url("facts:acme", "missing", "verify/")).status_code == 404


def test_coordination_check_names_semantic_namespaces_without_a_staleness_rule(facts):
    sales, _ = facts
    put(sales, "facts:acme", "hq", {"city": "Lyon"})
    put(sales, "customer:acme", "profile", {"name": "Acme"})
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("coordination_check", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if "semantic memory goes stale" in line)
    assert line.startswith("✗") and "customer:acme" in line and "facts:acme" not in line


# --- facts are superseded, not overwritten ---------------------------------------------------------


def test_a_supersession_chain_read_at_three_times(facts):
    sales, _ = facts
    put(sales, "facts:acme", "ceo-2024", {"ceo": "Ann"})
    response = put(
        sales, "facts:acme", "ceo-2025", {"ceo": "Bob"}, supersedes=[{"namespace": "facts:acme", "key": "ceo-2024"}]
    )
    assert response.status_code == 201, response.content
    put(sales, "facts:acme", "ceo-2026", {"ceo": "Cy"}, supersedes=[{"namespace": "facts:acme", "key": "ceo-2025"}])
    t1, t2, t3 = (
        Event.objects.get(type="memory.created", resource=f"facts:acme/ceo-{year}").at for year in (2024, 2025, 2026)
    )

    def ceo(as_of) -> list[str]:
        """Who was CEO at `as_of`, read from the three facts as they were then."""
        found = []
        for year in (2024, 2025, 2026):
            response = sales.client.get(url("facts:acme", f"ceo-{year}"), {"as_of": iso(as_of)})
            if response.status_code == 200:
                found.append(response.json()["content"]["ceo"])
        return found

    assert (ceo(t1), ceo(t2), ceo(t3)) == (["Ann"], ["Bob"], ["Cy"])

    # Now: the superseded facts left default reads and lists, and are kept.
    assert sales.client.get(url("facts:acme", "ceo-2024")).status_code == 404
    kept = sales.client.get(url("facts:acme", "ceo-2024"), {"include": "invalid"}).json()
    assert (kept["content"], kept["superseded_by"]) == ({"ceo": "Ann"}, "facts:acme/ceo-2025")
    at_t2 = sales.client.get(url("facts:acme", "ceo-2024"), {"as_of": iso(t2), "include": "invalid"}).json()
    assert at_t2["superseded_by"] == "facts:acme/ceo-2025"
    listed = sales.client.get("/api/v1/memories/", {"namespace": "facts:acme"}).json()["results"]
    assert [m["key"] for m in listed] == ["ceo-2026"]
    everything = sales.client.get("/api/v1/memories/", {"namespace": "facts:acme", "include": "invalid"}).json()
    assert [m["key"] for m in everything["results"]] == ["ceo-2024", "ceo-2025", "ceo-2026"]
    assert [m["key"] for m in search(sales.client, "ceo")] == ["ceo-2026"]
    history = sales.client.get(url("facts:acme", "ceo-2024", "history/")).json()["versions"]
    assert [(h["type"], h.get("superseded_by")) for h in history] == [  # newest first
        ("memory.superseded", "facts:acme/ceo-2025"),
        ("memory.created", None),
    ]
    assert Memory.objects.get(key="ceo-2024").version == 1  # superseding makes no new version
    assert sales.client.get(url("facts:acme", "ceo-2024"), {"include": "everything"}).status_code == 400


def test_supersedes_is_checked(facts, make_agent):
    sales, _ = facts
    put(sales, "facts:acme", "a", {"n": 1})
    missing = put(sales, "facts:acme", "b", {"n": 2}, supersedes=[{"namespace": "facts:acme", "key": "nope"}])
    assert missing.status_code == 400 and "facts:acme/nope" in missing.json()["error"]["message"]
    assert not Memory.objects.filter(key="b").exists()  # refused as a whole
    itself = put(sales, "facts:acme", "a", {"n": 3}, supersedes=[{"namespace": "facts:acme", "key": "a"}])
    assert itself.status_code == 400
    docs = make_agent("docs-1", "docs")
    put(docs, "code:repo", "style", {"tabs": False})
    refused = put(sales, "facts:acme", "c", {"n": 4}, supersedes=[{"namespace": "code:repo", "key": "style"}])
    assert refused.status_code == 403


def test_valid_until_ends_a_fact_without_deleting_it(facts):
    sales, _ = facts
    until = times.now() + timedelta(seconds=30)
    response = put(sales, "facts:acme", "promo", {"discount": 10}, valid_until=iso(until))
    assert response.status_code == 201, response.content
    assert sales.client.get(url("facts:acme", "promo")).json()["valid_until"] == iso(until)
    with at(until):
        assert sales.client.get(url("facts:acme", "promo")).status_code == 404
        assert sales.client.get(url("facts:acme", "promo"), {"include": "invalid"}).json()["content"] == {
            "discount": 10
        }
        assert sales.client.get("/api/v1/memories/", {"namespace": "facts:acme"}).json()["results"] == []
        assert search(sales.client, "10") == []
    past = put(sales, "facts:acme", "old", {"n": 1}, valid_until=iso(times.now() - timedelta(seconds=1)))
    assert past.status_code == 400 and "valid_until" in past.json()["error"]["message"]


# --- working memory -----------------------------------------------------------------------------------


def test_working_memory_belongs_to_a_task_or_expires(facts):
    sales, _ = facts
    refused = put(sales, "scratch:notes", "draft", {"n": 1}, kind="working")
    assert refused.status_code == 400
    assert (
        "task:<task id>" in refused.json()["error"]["message"] and "ttl_seconds" in refused.json()["error"]["message"]
    )
    assert put(sales, "scratch:notes", "draft", {"n": 1}, kind="working", ttl_seconds=60).status_code == 201
    assert put(sales, "task:7", "plan", {"step": 1}, kind="working").status_code == 201
    assert put(sales, "task:7:sub", "notes", {"step": 2}, kind="working").status_code == 201
    assert put(sales, "task:70", "plan", {"step": 1}, kind="working").status_code == 201
    listed = sales.client.get("/api/v1/memories/", {"task": "7"}).json()["results"]
    assert [(m["namespace"], m["key"]) for m in listed] == [("task:7", "plan"), ("task:7:sub", "notes")]
    assert sales.client.get("/api/v1/memories/", {"task": "x"}).status_code == 400


# --- policies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"stale_after_seconds": 0}, "stale_after_seconds"),
        ({"stale_after_seconds": -5}, "stale_after_seconds"),
        ({"stale_after_seconds": "a week"}, "stale_after_seconds"),
        ({"stale_after_seconds": True}, "stale_after_seconds"),
        ({"stale_after_seconds": 10**12}, "stale_after_seconds"),
        ({"episodic_summarize_after_seconds": 1.5}, "episodic_summarize_after_seconds"),
        ({"recency_half_life_seconds": -1}, "recency_half_life_seconds"),
        ({"summarizer": "scribe"}, "summarizer"),  # no age to summarize at
        ({"summarizer": "*", "episodic_summarize_after_seconds": 60}, "summarizer"),
        ({"summarizer": 3, "episodic_summarize_after_seconds": 60}, "summarizer"),
    ],
)
def test_policies_refuse_nonsense_lifecycle_values_naming_the_entry(db, entry, field):
    document = {"namespaces": [{"pattern": "a:*"}, {"pattern": "facts:*", **entry}]}
    with pytest.raises(Invalid) as refused:
        parse_document(document)
    assert refused.value.message.startswith("namespaces[1]: ")
    assert field in refused.value.message
    assert refused.value.details["field"] == field


def test_lifecycle_settings_round_trip_through_export(db):
    from policies.selectors import policies_export

    entry = {
        "pattern": "log:*",
        "readers": ["*"],
        "writers": ["*"],
        "write_mode": "optimistic",
        "stale_after_seconds": 10,
        "episodic_summarize_after_seconds": 20,
        "summarizer": "scribe",
        "recency_half_life_seconds": 30,
    }
    policies_apply(actor=SYSTEM, document={"namespaces": [entry]})
    assert policies_export()["namespaces"] == [entry]
    assert json.dumps(policies_export())  # the file format
