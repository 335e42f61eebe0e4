"""The MCP server's tools against a real hub: in-process through the mcp Client, and over stdio as a
host would run `memoryhub-mcp`."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from mcp import Client, StdioServerParameters

from memoryhub.client import AsyncHubClient, HubClient
from memoryhub.client.mcp import build_server
from memoryhub.memories.models import Memory as MemoryRow
from tests.servers import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

TOOLS = {
    "inbox",
    "send",
    "ack",
    "memory_get",
    "memory_put",
    "memory_verify",
    "memory_update",
    "memory_history",
    "memory_search",
    "lock",
    "release",
    "claim",
    "complete",
    "activity",
}


@pytest.fixture
def tokens(connect):
    return lambda agent_id, role: connect(agent_id, role).persona.token


def call(client: Client):
    async def tool(name: str, **arguments):
        result = await client.call_tool(name, arguments)
        payload = result.structured_content
        assert json.loads(result.content[0].text) == payload  # the model reads the same as a program
        return result.is_error, payload

    return tool


def in_process(hub_url: str, token: str, scenario):
    async def main():
        hub = AsyncHubClient(hub_url, token=token)
        try:
            async with Client(build_server(hub)) as client:
                return await scenario(call(client), client)
        finally:
            await hub.aclose()

    return asyncio.run(main())


def test_every_tool_is_listed(hub_url, tokens):
    async def scenario(tool, client):
        return {t.name for t in (await client.list_tools()).tools}

    assert in_process(hub_url, tokens("docs-1", "docs"), scenario) == TOOLS


def test_memory_tools_put_get_update_history_and_conflicts(hub_url, tokens):
    async def scenario(tool, client):
        results = {}
        results["put"] = await tool("memory_put", namespace="code:review", key="pr-1", content={"verdict": "pending"})
        results["get"] = await tool("memory_get", namespace="code:review", key="pr-1")
        results["stale"] = await tool(
            "memory_put", namespace="code:review", key="pr-1", content={"verdict": "x"}, version=9
        )
        results["update"] = await tool(
            "memory_update", namespace="code:review", key="pr-1", patch={"verdict": "lgtm", "notes": "ok"}
        )
        results["history"] = await tool("memory_history", namespace="code:review", key="pr-1")
        results["search"] = await tool("memory_search", q="lgtm", mode="lexical", namespace="code:*")
        results["forbidden"] = await tool("memory_put", namespace="customer:acme", key="p", content={})
        return results

    r = in_process(hub_url, tokens("docs-1", "docs"), scenario)
    assert r["put"] == (False, r["put"][1]) and r["put"][1]["version"] == 1
    assert r["get"][1]["content"] == {"verdict": "pending"}
    is_error, shape = r["stale"]
    assert is_error and shape["error"]["code"] == "version_conflict"
    assert shape["error"]["details"]["current"]["version"] == 1
    assert r["update"][1]["content"] == {"verdict": "lgtm", "notes": "ok"}
    assert [v["version"] for v in r["history"][1]["versions"]] == [2, 1]  # newest first
    found = r["search"][1]
    assert [(m["namespace"], m["key"]) for m in found["results"]] == [("code:review", "pr-1")]
    assert "<mark>lgtm</mark>" in found["results"][0]["snippet"] and found["next_cursor"] is None
    assert r["forbidden"][0] and r["forbidden"][1]["error"]["code"] == "forbidden"
    assert MemoryRow.objects.get(namespace="code:review", key="pr-1").version == 2


def test_memory_tools_supersede_verify_and_read_invalid_facts(hub_url, tokens):
    async def scenario(tool, client):
        r = {}
        await tool("memory_put", namespace="code:review", key="style-v1", content={"tabs": True}, kind="semantic")
        r["put"] = await tool(
            "memory_put",
            namespace="code:review",
            key="style-v2",
            content={"tabs": False},
            supersedes=[{"namespace": "code:review", "key": "style-v1"}],
            valid_until="2999-01-01T00:00:00Z",
        )
        r["gone"] = await tool("memory_get", namespace="code:review", key="style-v1")
        r["kept"] = await tool("memory_get", namespace="code:review", key="style-v1", include_invalid=True)
        r["verify"] = await tool("memory_verify", namespace="code:review", key="style-v2", reason="still true")
        r["bad_ref"] = await tool("memory_put", namespace="code:review", key="x", content={}, supersedes=[{"ns": "a"}])
        return r

    r = in_process(hub_url, tokens("docs-1", "docs"), scenario)
    assert not r["put"][0] and r["put"][1]["valid_until"] == "2999-01-01T00:00:00Z"
    assert r["gone"][0] and r["gone"][1]["error"]["code"] == "not_found"
    assert r["kept"][1]["superseded_by"] == "code:review/style-v2"
    assert not r["verify"][0] and (r["verify"][1]["version"], r["verify"][1]["verified_by"]) == (1, "docs-1")
    assert r["bad_ref"][0] and r["bad_ref"][1]["error"]["code"] == "invalid"
    assert not MemoryRow.objects.filter(namespace="code:review", key="x").exists()


def test_inbox_send_ack_and_activity_tools(hub_url, tokens):
    support, sales = tokens("support-1", "support"), tokens("sales-1", "sales")

    async def as_support(tool, client):
        await tool("memory_put", namespace="customer:acme", key="profile", content={"health": "at_risk"})
        return await tool(
            "send", to_role="sales", context_type="escalation", content={"why": "outage"}, subject="customer:acme"
        )

    async def as_sales(tool, client):
        _, inbox = await tool("inbox")
        entry = inbox["entries"][0]
        acked = await tool("ack", entry_id=entry["id"], note="holding the upsell")
        activity = await tool("activity", resource="customer:acme")
        no_recipient = await tool("send", context_type="note", content={})
        return entry, acked, activity, no_recipient

    sent_error, sent = in_process(hub_url, support, as_support)
    assert not sent_error and sent["from_agent"] == "support-1"
    entry, acked, activity, no_recipient = in_process(hub_url, sales, as_sales)
    assert entry["id"] == sent["id"] and entry["context_type"] == "escalation"
    assert acked[1]["ack_note"] == "holding the upsell"
    assert (activity[1]["proceed"], activity[1]["defer_to"]) == (False, "support")
    assert no_recipient[0] and no_recipient[1]["error"]["code"] == "invalid"


def test_lock_release_claim_complete_tools(hub_url, tokens):
    lead = tokens("lead-1", "lead")
    inventory = tokens("inventory-1", "inventory")
    orders = tokens("orders-1", "orders")

    async def as_inventory(tool, client):
        _, lease = await tool("lock", resources=["memory:inventory:sku-1/count"], ttl_seconds=30)
        written = await tool(
            "memory_put",
            namespace="inventory:sku-1",
            key="count",
            content={"units": 4},
            fencing_token=lease["fencing_token"],
        )
        return lease, written

    async def as_orders_while_held(tool, client):
        held = await tool("lock", resources=["memory:inventory:sku-1/count"])
        _, empty = await tool("claim")
        return held, empty

    def as_inventory_release(lease):
        async def scenario(tool, client):
            return await tool("release", lease_id=lease["id"], holder_token=lease["holder_token"])

        return scenario

    lease, written = in_process(hub_url, inventory, as_inventory)
    assert not written[0] and written[1]["content"] == {"units": 4}
    held, empty = in_process(hub_url, orders, as_orders_while_held)
    assert held[0] and held[1]["error"]["code"] == "lock_held"
    assert held[1]["error"]["details"]["holders"][0]["agent"] == "inventory-1"
    assert empty == {"task": None}
    released = in_process(hub_url, inventory, as_inventory_release(lease))
    assert not released[0] and released[1]["released"] is True

    with HubClient(hub_url, token=lead) as hub:
        created = hub.create_task("orders", "ship", {"order": 7})

    async def work(tool, client):
        _, claimed = await tool("claim", ttl_seconds=60)
        done = await tool("complete", task_id=claimed["task"]["id"], result={"shipped": True})
        return claimed, done

    claimed, done = in_process(hub_url, orders, work)
    assert claimed["task"]["id"] == created.id
    assert done[1]["status"] == "completed" and done[1]["result"] == {"shipped": True}


def test_the_console_script_serves_the_tools_over_stdio(hub_url, tokens):
    token = tokens("docs-1", "docs")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memoryhub.client.mcp"],
        env={**os.environ, "MEMORYHUB_URL": hub_url, "MEMORYHUB_TOKEN": token},
        cwd=str(ROOT),
    )

    async def main():
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            put = await client.call_tool(
                "memory_put", {"namespace": "code:review", "key": "stdio", "content": {"via": "stdio"}}
            )
            missing = await client.call_tool("memory_get", {"namespace": "code:review", "key": "absent"})
            return tools, put, missing

    tools, put, missing = asyncio.run(main())
    assert tools == TOOLS
    assert not put.is_error and put.structured_content["updated_by"] == "docs-1"
    assert missing.is_error and missing.structured_content["error"]["code"] == "not_found"
    assert MemoryRow.objects.get(namespace="code:review", key="stdio").content == {"via": "stdio"}
