"""HubStore beyond InMemoryStore's behaviour: versions, the writer's identity, policies, TTLs, the
async store, and a real LangGraph StateGraph run by two agents sharing one store."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TypedDict

import pytest

from memoryhub.client import Forbidden, HubClient
from memoryhub.memories.models import Memory as MemoryRow
from tests.integrations.conftest import require, unique

require("langgraph", "langgraph")

from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.runtime import Runtime  # noqa: E402

from memoryhub.integrations.langgraph import AsyncHubStore, HubStore, StoreVersionConflict  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def test_tuple_namespaces_with_colons_map_to_hub_namespaces_and_back(agent):
    prefix = unique("scratch:lg")
    store = HubStore(agent("planner-1", "planner"), prefix=prefix)
    store.put(("users", "acme:eu", "notes"), "call 1/2", {"text": "renewal"})
    row = MemoryRow.objects.get(namespace__startswith=prefix)
    assert (row.namespace, row.key) == (f"{prefix}:users:acme.3Aeu:notes", "call.201.2F2")
    item = store.get(("users", "acme:eu", "notes"), "call 1/2")
    assert (item.namespace, item.key, item.value) == (("users", "acme:eu", "notes"), "call 1/2", {"text": "renewal"})
    assert store.list_namespaces(prefix=("users", "*"), max_depth=2) == [("users", "acme:eu")]
    assert store.list_namespaces(suffix=("notes",)) == [("users", "acme:eu", "notes")]
    assert store.get(("users", "acme", "eu", "notes"), "call 1/2") is None  # ':' never splits a label


def test_a_put_with_a_stale_version_raises_and_keeps_the_other_agents_write(agent):
    prefix = unique("counter:lg")
    planner, writer = (
        HubStore(agent("planner-1", "planner"), prefix=prefix),
        HubStore(agent("writer-1", "writer"), prefix=prefix),
    )
    created = planner.put(("plans",), "q3", {"steps": 1}, version=0)
    assert (created.version, created.updated_by) == (1, "planner-1")
    with pytest.raises(StoreVersionConflict) as exists:
        writer.put(("plans",), "q3", {"steps": 9}, version=0)  # create-only over a present item
    assert exists.value.current_item.value == {"steps": 1}

    read_by_planner, read_by_writer = planner.get(("plans",), "q3"), writer.get(("plans",), "q3")
    planner.put(("plans",), "q3", {"steps": 2}, version=read_by_planner.version)
    with pytest.raises(StoreVersionConflict) as stale:
        writer.put(("plans",), "q3", {"steps": 3}, version=read_by_writer.version)
    assert "version 2, not 1" in str(stale.value)
    assert stale.value.current_item.value == {"steps": 2}
    assert stale.value.current_item.updated_by == "planner-1"
    current = writer.get(("plans",), "q3")
    assert (current.value, current.version, current.updated_by) == ({"steps": 2}, 2, "planner-1")

    # Without a version LangGraph's put replaces whatever is there, also in an optimistic namespace.
    writer.put(("plans",), "q3", {"steps": 4})
    assert (writer.get(("plans",), "q3").updated_by, MemoryRow.objects.get(namespace=f"{prefix}:plans").version) == (
        "writer-1",
        3,
    )


def test_policies_decide_what_a_store_may_read_and_write(agent):
    support = HubStore(agent("support-1", "support"), prefix="customer")
    support.put(("vip", "acme"), "profile", {"tier": "gold"})  # customer:vip:* is support's alone
    sales = HubStore(agent("sales-1", "sales"), prefix="customer")
    assert sales.get(("vip", "acme"), "profile") is None  # not readable: absent, no existence leak
    assert sales.search(("vip",)) == []
    with pytest.raises(Forbidden):
        sales.put(("vip", "acme"), "profile", {"tier": "none"})
    assert support.get(("vip", "acme"), "profile").value == {"tier": "gold"}


def test_ttl_minutes_expire_items_and_reads_refresh_them(agent):
    store = HubStore(agent("planner-1", "planner"), prefix=unique("scratch:lg"))
    store.put(("cache",), "short", {"v": 1}, ttl=1 / 60)  # one second
    store.put(("cache",), "long", {"v": 2}, ttl=3 / 60)  # three seconds
    first = store.get(("cache",), "long", refresh_ttl=False)
    assert (first.expires_at - first.updated_at).total_seconds() == pytest.approx(3, abs=0.01)
    time.sleep(1.2)  # the short one's second is over; the long one has under 90 % of its TTL left
    assert store.get(("cache",), "short") is None
    refreshed = store.get(("cache",), "long")  # this read rewrites it with its TTL
    again = store.get(("cache",), "long", refresh_ttl=False)
    assert again.version == first.version + 1
    assert again.expires_at > first.expires_at
    assert (again.expires_at - again.updated_at).total_seconds() == pytest.approx(3, abs=0.01)
    assert refreshed.value == again.value == {"v": 2}
    assert [item.key for item in store.search(("cache",))] == ["long"]


def test_async_store_batches_and_conflicts(async_agent):
    hub = async_agent("planner-1", "planner")

    async def main():
        store = AsyncHubStore(hub, prefix=unique("counter:lg"))
        try:
            await store.aput(("a", "b"), "x", {"n": 1})
            await store.aput(("a", "c"), "y", {"n": 5})
            found = await store.asearch(("a",), filter={"n": {"$gte": 2}})
            names = await store.alist_namespaces(prefix=("a",))
            item = await store.aget(("a", "b"), "x")
            await store.aput(("a", "b"), "x", {"n": 2}, version=item.version)
            with pytest.raises(StoreVersionConflict):
                await store.aput(("a", "b"), "x", {"n": 3}, version=item.version)
            # Its sync methods work from another thread while the loop runs.
            from_thread = await asyncio.to_thread(store.get, ("a", "b"), "x")
            await store.adelete(("a", "b"), "x")
            return found, names, from_thread, await store.aget(("a", "b"), "x")
        finally:
            await hub.aclose()

    found, names, from_thread, deleted = asyncio.run(main())
    assert [(i.namespace, i.key) for i in found] == [(("a", "c"), "y")]
    assert names == [("a", "b"), ("a", "c")]
    assert from_thread.value == {"n": 2} and deleted is None


@pytest.mark.skipif(
    not hasattr(HubClient, "search"), reason="needs the hub's GET search/ (client hub.search): not merged yet"
)
def test_a_query_goes_to_the_hubs_search_within_the_prefix(agent):
    store = HubStore(agent("planner-1", "planner"), prefix=unique("scratch:lg"))
    store.put(("docs",), "a", {"text": "the renewal call with acme went well"})
    store.put(("docs",), "b", {"text": "inventory counts for the warehouse"})
    store.put(("other",), "c", {"text": "renewal renewal renewal"})
    results = store.search(("docs",), query="renewal call")
    assert [item.key for item in results][:1] == ["a"]
    assert all(item.namespace == ("docs",) for item in results)
    assert results[0].score is not None


class Plan(TypedDict):
    agent: str
    rounds: int


def build_graph(store: HubStore):
    """A graph whose nodes share state through the store: each run adds one to a shared counter with
    an expected version (re-reading on a conflict) and leaves a note of its own."""

    def count(state: Plan, runtime: Runtime) -> Plan:
        while True:
            item = runtime.store.get(("team",), "counter")
            try:
                runtime.store.put(
                    ("team",),
                    "counter",
                    {"n": (item.value["n"] if item else 0) + 1},
                    version=item.version if item else 0,
                )
                return {"agent": state["agent"], "rounds": state["rounds"] + 1}
            except StoreVersionConflict:
                continue

    def note(state: Plan, runtime: Runtime) -> Plan:
        runtime.store.put(("team", "notes"), f"{state['agent']}-{state['rounds']}", {"by": state["agent"]})
        return state

    graph = StateGraph(Plan)
    graph.add_node("count", count)
    graph.add_node("note", note)
    graph.add_edge(START, "count")
    graph.add_edge("count", "note")
    graph.add_edge("note", END)
    return graph.compile(store=store)


def test_two_agents_running_a_state_graph_on_one_store_lose_no_update(agent):
    prefix = unique("counter:lg")
    graphs = {name: build_graph(HubStore(agent(name, "planner"), prefix=prefix)) for name in ("planner-1", "planner-2")}
    runs = 15
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(name: str) -> None:
        try:
            start.wait()
            for round_ in range(runs):
                assert graphs[name].invoke({"agent": name, "rounds": round_})["rounds"] == round_ + 1
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(name,)) for name in graphs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    reader = HubStore(agent("reader-1", "reader"), prefix=prefix)
    counter = reader.get(("team",), "counter")
    assert counter.value == {"n": 2 * runs}  # no increment lost
    assert counter.version == 2 * runs
    notes = reader.search(("team", "notes"), limit=100)
    assert {(item.key, item.updated_by) for item in notes} == {
        (f"{name}-{r + 1}", name) for name in graphs for r in range(runs)
    }
    writers = MemoryRow.objects.get(namespace=f"{prefix}:team", key="counter")
    assert writers.updated_by in graphs
