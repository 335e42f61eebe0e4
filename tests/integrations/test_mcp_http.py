"""MCP served by the hub at /mcp/ over Streamable HTTP, driven by the official mcp client against the
session's daphne: the same policies, error codes and events as the REST API, the agent's token."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from memoryhub.actors import SYSTEM
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory as MemoryRow
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES
from tests.integrations.conftest import require

require("mcp", "mcp")

from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

TOOLS = {
    "memory_get",
    "memory_put",
    "memory_verify",
    "memory_patch",
    "memory_delete",
    "memory_search",
    "memory_history",
    "send",
    "inbox",
    "ack",
    "lock",
    "lock_heartbeat",
    "release",
    "claim",
    "task_heartbeat",
    "complete",
    "fail",
    "activity",
    "events",
}


def over_http(hub_url: str, token: str, scenario):
    async def main():
        async with (
            httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
            Client(streamable_http_client(f"{hub_url}/mcp/", http_client=http)) as client,
        ):

            async def tool(name: str, **arguments):
                result = await client.call_tool(name, arguments)
                payload = result.structured_content
                assert json.loads(result.content[0].text) == payload, (name, result)
                return result.is_error, payload

            return await scenario(tool, client)

    return asyncio.run(main())


@pytest.fixture
def token(agent):
    return lambda agent_id, role: agent(agent_id, role).persona.token


def test_every_tool_is_listed_and_the_caller_is_the_tokens_agent(hub_url, token):
    async def scenario(tool, client):
        names = {t.name for t in (await client.list_tools()).tools}
        put = await tool("memory_put", namespace="code:review", key="pr-1", content={"verdict": "pending"})
        return names, put

    names, (is_error, put) = over_http(hub_url, token("docs-1", "docs"), scenario)
    assert names == TOOLS
    assert not is_error and put["version"] == 1 and put["updated_by"] == "docs-1" and put["seq"] > 0
    event = Event.objects.get(seq=put["seq"])
    assert (event.type, event.actor_id) == ("memory.created", "docs-1")


def test_memory_tools_enforce_versions_ownership_and_policies_with_the_hubs_codes(hub_url, token):
    async def as_support(tool, client):
        r = {}
        r["put"] = await tool("memory_put", namespace="customer:acme", key="profile", content={"health": "ok"})
        r["stale"] = await tool(
            "memory_put", namespace="customer:acme", key="profile", content={"health": "x"}, version=7
        )
        r["no_version"] = await tool("memory_put", namespace="customer:acme", key="profile", content={"health": "y"})
        r["patch"] = await tool(
            "memory_patch", namespace="customer:acme", key="profile", patch={"health": "at_risk"}, version=1
        )
        r["not_owned"] = await tool(
            "memory_patch", namespace="customer:acme", key="profile", patch={"deal_stage": "won"}, version=2
        )
        r["history"] = await tool("memory_history", namespace="customer:acme", key="profile")
        r["nul"] = await tool("memory_put", namespace="customer:acme", key="bad", content={}, reason="a\x00b")
        r["long_reason"] = await tool("memory_put", namespace="customer:acme", key="bad", content={}, reason="r" * 3000)
        r["bad_name"] = await tool("memory_get", namespace="customer::acme", key="profile")
        r["search"] = await tool("memory_search", query="at_risk", namespace="customer:*")
        r["delete"] = await tool("memory_delete", namespace="customer:acme", key="profile", version=2)
        return r

    async def as_docs(tool, client):
        return await tool("memory_get", namespace="customer:acme", key="profile"), await tool(
            "memory_put", namespace="customer:acme", key="x", content={}
        )

    r = over_http(hub_url, token("support-1", "support"), as_support)
    assert r["put"][1]["version"] == 1
    assert r["stale"][0] and r["stale"][1]["error"]["code"] == "version_conflict"
    assert r["stale"][1]["error"]["status"] == 412 and r["stale"][1]["error"]["details"]["current"]["version"] == 1
    assert r["no_version"][1]["error"]["code"] == "precondition_required"
    assert r["patch"][1]["content"] == {"health": "at_risk"} and r["patch"][1]["version"] == 2
    assert r["not_owned"][1]["error"]["code"] == "field_not_owned"
    assert r["not_owned"][1]["error"]["details"]["fields"] == {"deal_stage": ["sales"]}
    assert [v["version"] for v in r["history"][1]["versions"]] == [2, 1]  # newest first
    for case in ("nul", "long_reason", "bad_name"):
        assert r[case][0] and r[case][1]["error"]["code"] == "invalid", (case, r[case])
    assert [m["key"] for m in r["search"][1]["results"]] == ["profile"]
    assert r["delete"][1]["content"] is None
    assert not MemoryRow.objects.filter(key="bad").exists()

    read, write = over_http(hub_url, token("docs-1", "docs"), as_docs)
    assert read[1]["error"]["code"] == "not_found"  # not readable: no existence leak
    assert write[1]["error"]["code"] == "forbidden"


def test_memory_tools_supersede_verify_and_read_invalid_facts(hub_url, token):
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
        r["past"] = await tool(
            "memory_put", namespace="code:review", key="x", content={}, valid_until="2000-01-01T00:00:00Z"
        )
        return r

    r = over_http(hub_url, token("docs-1", "docs"), scenario)
    assert not r["put"][0] and r["put"][1]["valid_until"] == "2999-01-01T00:00:00Z"
    assert r["gone"][0] and r["gone"][1]["error"]["code"] == "not_found"
    assert r["kept"][1]["superseded_by"] == "code:review/style-v2"
    assert not r["verify"][0] and (r["verify"][1]["version"], r["verify"][1]["verified_by"]) == (1, "docs-1")
    verified = Event.objects.get(seq=r["verify"][1]["seq"])
    assert (verified.type, verified.actor_id, verified.reason) == ("memory.verified", "docs-1", "still true")
    assert r["past"][0] and r["past"][1]["error"]["code"] == "invalid"


def test_a_writer_that_may_not_read_gets_no_content_back_from_put_or_verify(hub_url, token):
    drop = {"pattern": "drop:*", "readers": ["lead"], "writers": ["sales", "lead"]}  # a drop box
    policies_apply(actor=SYSTEM, document={**TEST_POLICIES, "namespaces": [*TEST_POLICIES["namespaces"], drop]})

    async def as_sales(tool, client):
        put = await tool("memory_put", namespace="drop:box", key="note", content={"plan": "SECRET-PLAN"})
        verified = await tool("memory_verify", namespace="drop:box", key="note")
        return put, verified

    put, verified = over_http(hub_url, token("sales-1", "sales"), as_sales)
    for is_error, body in (put, verified):
        assert not is_error and body["version"] == 1
        assert "content" not in body and "reason" not in body, body


def test_inbox_send_ack_activity_and_events(hub_url, token):
    async def as_support(tool, client):
        await tool("memory_put", namespace="customer:acme", key="profile", content={"health": "at_risk"})
        return await tool(
            "send", to_role="sales", context_type="escalation", content={"why": "outage"}, subject="customer:acme"
        )

    async def as_sales(tool, client):
        _, inbox = await tool("inbox")
        resource = await client.read_resource("memoryhub://inbox/unread")
        acked = await tool("ack", entry_id=inbox["entries"][0]["id"], note="holding the upsell")
        activity = await tool("activity", resource="customer:acme")
        events = await tool("events", since=0, namespace="customer:*")
        no_recipient = await tool("send", context_type="note", content={})
        return inbox, resource, acked, activity, events, no_recipient

    sales = token("sales-1", "sales")
    failed, sent = over_http(hub_url, token("support-1", "support"), as_support)
    assert not failed, sent
    assert sent["from_agent"] == "support-1" and sent["from_role"] == "support"
    inbox, resource, acked, activity, events, no_recipient = over_http(hub_url, sales, as_sales)
    assert [e["id"] for e in inbox["entries"]] == [sent["id"]]
    assert [e["id"] for e in json.loads(resource.contents[0].text)["entries"]] == [sent["id"]]
    assert acked[1]["ack_note"] == "holding the upsell" and acked[1]["acked_at"]
    assert (activity[1]["proceed"], activity[1]["defer_to"]) == (False, "support")
    assert [e["type"] for e in events[1]["events"]] == ["memory.created"]
    assert events[1]["last_seq"] >= events[1]["next_since"]
    assert no_recipient[0] and no_recipient[1]["error"]["code"] == "invalid"


def test_lock_heartbeat_release_and_the_task_cycle(hub_url, token, agent):
    async def as_inventory(tool, client):
        _, lease = await tool("lock", resources=["memory:inventory:sku-1/count"], ttl_seconds=5)
        written = await tool(
            "memory_put",
            namespace="inventory:sku-1",
            key="count",
            content={"units": 4},
            fencing_token=lease["fencing_token"],
        )
        beat = await tool("lock_heartbeat", lease_id=lease["id"], holder_token=lease["holder_token"], ttl_seconds=60)
        return lease, written, beat

    async def as_orders(tool, client):
        held = await tool("lock", resources=["memory:inventory:sku-1/count"])
        without_lock = await tool("memory_put", namespace="inventory:sku-1", key="count", content={"units": 0})
        not_mine = await tool("release", lease_id=lease["id"], holder_token=lease["holder_token"])
        return held, without_lock, not_mine

    lease, written, beat = over_http(hub_url, token("inventory-1", "inventory"), as_inventory)
    assert not written[0] and written[1]["content"] == {"units": 4}
    assert beat[1]["expires_at"] > lease["expires_at"]
    held, without_lock, not_mine = over_http(hub_url, token("orders-1", "orders"), as_orders)
    assert (
        held[1]["error"]["code"] == "lock_held" and held[1]["error"]["details"]["holders"][0]["agent"] == "inventory-1"
    )
    assert without_lock[1]["error"]["code"] == "held"
    assert not_mine[0]

    lead = agent("lead-1", "lead")
    first, second = lead.create_task("orders", "ship", {"order": 7}), lead.create_task("orders", "ship", {"order": 8})

    async def work(tool, client):
        _, one = await tool("claim", ttl_seconds=60)
        done = await tool("complete", task_id=one["task"]["id"], result={"shipped": True})
        again = await tool("complete", task_id=one["task"]["id"], result={"shipped": "twice"})
        _, two = await tool("claim", ttl_seconds=60)
        beat = await tool("task_heartbeat", task_id=two["task"]["id"], ttl_seconds=120)
        failed = await tool("fail", task_id=two["task"]["id"], error="carrier down", retry=False)
        _, none = await tool("claim")
        return one, done, again, two, beat, failed, none

    one, done, again, two, beat, failed, none = over_http(hub_url, token("orders-2", "orders"), work)
    assert (one["task"]["id"], two["task"]["id"]) == (first.id, second.id)
    assert done[1]["status"] == "completed" and again[1]["result"] == {"shipped": True} and again[1]["replayed"]
    assert not beat[0] and failed[1]["status"] == "failed"
    assert none == {"task": None}


def test_memory_resources_and_refusals_over_http(hub_url, token):
    async def scenario(tool, client):
        await tool("memory_put", namespace="code:review", key="pr-9", content={"verdict": "lgtm"})
        found = await client.read_resource("memoryhub://memories/code:review/pr-9")
        try:
            await client.read_resource("memoryhub://memories/code:review/absent")
            missing = None
        except MCPError as error:
            missing = error.error
        return json.loads(found.contents[0].text), missing

    found, missing = over_http(hub_url, token("docs-1", "docs"), scenario)
    assert found["content"] == {"verdict": "lgtm"} and found["updated_by"] == "docs-1"
    assert missing.code == -32002 and missing.data["error"]["code"] == "not_found"


def test_requests_without_a_valid_token_are_refused_in_the_hubs_shape(hub_url, token, agent):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    anonymous = httpx.post(f"{hub_url}/mcp/", json=body, headers=headers)
    wrong = httpx.post(f"{hub_url}/mcp/", json=body, headers={**headers, "Authorization": "Bearer nope"})
    assert anonymous.status_code == wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthenticated"

    from memoryhub.actors import SYSTEM
    from memoryhub.agents.services import agent_set_status

    suspended = agent("sales-9", "sales")
    agent_set_status(actor=SYSTEM, agent_id="sales-9", status="suspended", reason="runaway")
    refused = httpx.post(
        f"{hub_url}/mcp/", json=body, headers={**headers, "Authorization": f"Bearer {suspended.persona.token}"}
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "agent_suspended"


def test_memoryhub_mcp_without_the_extra_says_how_to_install_it():
    import subprocess
    import sys

    hide_mcp = "import sys; sys.modules['mcp'] = None; from memoryhub.mcp.stdio import main; main()"
    done = subprocess.run([sys.executable, "-c", hide_mcp], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "memoryhub-mcp needs the mcp extra (mcp>=2.3): pip install 'memoryhub[mcp]'\n"
