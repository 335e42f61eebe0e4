"""hub.search(...) on both clients against a real hub (the session's daphne)."""

from __future__ import annotations

import asyncio

import pytest

from memoryhub.client import AsyncHubClient, Invalid, SearchPage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def test_search_pages_filters_and_policies(connect, hub_url):
    writer = connect("coder-1", "code-review")
    for i in range(5):
        writer.put(
            "code:notes", f"walrus-{i}", {"text": f"walrus sighting {i}", "n": i, "status": "open" if i % 2 else "done"}
        )
    seller = connect("seller-1", "sales")
    seller.put("customer:acme", "walrus", {"text": "walrus plush toys for the customer"})

    page = writer.search("walrus", mode="lexical", namespace="code:*", limit=2)
    assert isinstance(page, SearchPage) and len(page.results) == 2 and page.next_cursor
    rest = writer.search("walrus", mode="lexical", namespace="code:*", limit=2, cursor=page.next_cursor)
    assert {r.key for r in page.results}.isdisjoint(r.key for r in rest.results)
    first = page.results[0]
    assert first.namespace == "code:notes" and first.version == 1 and first.updated_by == "coder-1"
    assert "<mark>walrus</mark>" in first.snippet and first.score > 0

    filtered = writer.search("walrus", mode="lexical", filter={"status": "open", "n": {"$gt": 1}})
    assert [r.key for r in filtered.results] == ["walrus-3"]
    # code-review may not read customer:*: not in results, whatever the namespace asked for.
    assert all(r.namespace.startswith("code:") for r in writer.search("walrus plush toys", namespace=["*"], limit=100))
    assert [r.namespace for r in seller.search("plush", mode="lexical")] == ["customer:acme"]

    with pytest.raises(Invalid):
        writer.search("", mode="lexical")
    with pytest.raises(Invalid):
        writer.search("walrus", mode="fuzzy")


def test_async_client_searches_too(connect, hub_url):
    writer = connect("coder-2", "code-review")
    writer.put("code:notes", "narwhal", {"text": "a narwhal in the fjord"})

    async def main():
        async with AsyncHubClient(hub_url, token=writer.persona.token) as hub:
            return await hub.search("narwhal", mode="lexical", namespace=["code:notes"])

    page = asyncio.run(main())
    assert [r.key for r in page.results] == ["narwhal"]
