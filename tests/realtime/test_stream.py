"""The websocket stream with WebsocketCommunicator: auth refusals, replay in order, live push, no gap
and no duplicate across replay/live and reconnects, and delivery of events whose publish was lost."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from memoryhub.actors import SYSTEM
from memoryhub.agents.services import agent_set_status
from memoryhub.asgi import application
from memoryhub.events.models import Event
from memoryhub.events.publisher import GROUP, message_for
from memoryhub.memories.services import memory_put
from memoryhub.realtime import consumers

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


async def connect(token: str | None = None, query: str = "", headers=None, cookies: str | None = None):
    all_headers = list(headers or [])
    if token:
        all_headers += bearer(token)
    if cookies:
        all_headers.append((b"cookie", cookies.encode()))
    communicator = WebsocketCommunicator(application, f"/ws/v1/events/{query}", headers=all_headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def frames(communicator, count: int, timeout: float = 5) -> list[dict]:
    return [json.loads(await communicator.receive_from(timeout=timeout)) for _ in range(count)]


async def nothing_more(communicator, wait: float = 0.3) -> bool:
    return await communicator.receive_nothing(timeout=wait)


async def live(token: str, query: str = ""):
    """A socket whose consumer has finished connecting (see `settled`)."""
    communicator, connected = await connect(token, query)
    assert connected
    await settled(communicator)
    return communicator


async def settled(communicator) -> list[dict]:
    """Ping and wait for the pong. A consumer handles one message at a time, so by then its connect()
    is done: subscribed, cursor set, replay sent. Returns the frames that came before (the replay).
    A write made earlier could land in the connect's own read of the log, or before the cursor."""
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    before = []
    while (frame := json.loads(await communicator.receive_from(timeout=5)))["type"] != "pong":
        before.append(frame)
    return before


write = database_sync_to_async(memory_put)


@pytest.fixture(autouse=True)
def live_by_publish_only(settings):
    """The consumer's idle re-read of the log (every 2 s) would deliver a live event too, within the
    5 s the tests wait: pushed out of reach, live delivery can only come by publish. The re-read is
    tested on its own (`test_an_event_whose_publish_was_lost_still_arrives`)."""
    settings.MEMORYHUB_WS_CATCHUP_SECONDS = 600


@pytest.fixture
def agents(policies, make_agent):
    return {
        "sales": make_agent("sales-1", "sales"),
        "support": make_agent("support-1", "support"),
        "docs": make_agent("docs-1", "docs"),
    }


async def test_no_token_closes_4401():
    communicator, connected = await connect(headers=[ORIGIN])
    assert connected
    assert (await communicator.receive_output(timeout=5))["code"] == 4401


async def test_unknown_token_closes_4401(agents):
    communicator, _ = await connect("mh_wrong")
    assert (await communicator.receive_output(timeout=5))["code"] == 4401


async def test_suspended_agent_closes_4403(agents):
    await database_sync_to_async(agent_set_status)(actor=SYSTEM, agent_id="sales-1", status="suspended")
    communicator, _ = await connect(agents["sales"].token)
    assert (await communicator.receive_output(timeout=5))["code"] == 4403


async def test_a_namespace_the_agent_may_not_read_closes_4403(agents):
    communicator, _ = await connect(agents["docs"].token, "?namespaces=customer:*")
    assert (await communicator.receive_output(timeout=5))["code"] == 4403


async def test_browser_session_without_allowed_origin_is_refused(agents, human):
    cookies = f"sessionid={human.cookies['sessionid'].value}"
    communicator, connected = await connect(cookies=cookies, headers=[(b"origin", b"http://evil.example")])
    assert not connected
    ok, connected = await connect(cookies=cookies, headers=[ORIGIN], query="?since=0")
    assert connected
    await ok.disconnect()


async def test_replay_then_live_in_seq_order_filtered_by_policy(agents):
    sales, docs = agents["sales"], agents["docs"]
    await write(actor=sales.actor, namespace="customer:acme", key="a", content={"n": 1})
    await write(actor=docs.actor, namespace="code:style", key="b", content={"n": 2})
    await write(actor=agents["support"].actor, namespace="customer:vip:x", key="c", content={"n": 3})
    communicator, _ = await connect(sales.token, "?since=0")
    replayed = await settled(communicator)  # the whole replay (customer:vip:* is support's only)
    assert [f["event"]["resource"] for f in replayed] == ["agent:sales-1", "customer:acme/a", "code:style/b"]
    assert [f["seq"] for f in replayed] == sorted(f["seq"] for f in replayed)
    assert all(f["type"] == "event" and f["event"]["seq"] == f["seq"] for f in replayed)

    await write(actor=docs.actor, namespace="code:style", key="live", content={"n": 4})
    (live,) = await frames(communicator, 1)
    assert live["event"]["resource"] == "code:style/live" and live["seq"] > replayed[-1]["seq"]
    await communicator.disconnect()


async def test_namespaces_parameter_narrows_the_stream(agents):
    sales = agents["sales"]
    communicator = await live(sales.token, "?namespaces=code:*")
    await write(actor=sales.actor, namespace="customer:acme", key="a", content={})
    await write(actor=agents["docs"].actor, namespace="code:style", key="b", content={})
    (frame,) = await frames(communicator, 1)
    assert frame["event"]["namespace"] == "code:style"
    assert await nothing_more(communicator)
    await communicator.disconnect()


async def test_events_written_during_replay_are_sent_once_in_order(agents, monkeypatch):
    docs = agents["docs"]
    for n in range(consumers.BATCH + 20):  # more than one replay batch
        await write(actor=docs.actor, namespace="code:bulk", key=f"k{n}", content={"n": n})
    calls = {"n": 0}
    original = consumers._fetch_after

    async def fetch_and_write_meanwhile(cursor, limit=consumers.BATCH):
        calls["n"] += 1
        if calls["n"] == 1:
            # A live event commits (and is published) while the replay is under way.
            await write(actor=docs.actor, namespace="code:bulk", key="during", content={"live": True})
        return await original(cursor, limit)

    monkeypatch.setattr(consumers, "_fetch_after", fetch_and_write_meanwhile)
    communicator, _ = await connect(docs.token, "?since=0&namespaces=code:*")
    total = consumers.BATCH + 21
    received = await frames(communicator, total, timeout=10)
    seqs = [f["seq"] for f in received]
    assert seqs == sorted(set(seqs)), "no duplicate, in order"
    assert received[-1]["event"]["resource"] == "code:bulk/during"
    assert await nothing_more(communicator)
    await communicator.disconnect()


async def test_resume_with_since_has_no_gap_and_no_repeat(agents):
    docs = agents["docs"]
    communicator = await live(docs.token, "?namespaces=code:*")
    await write(actor=docs.actor, namespace="code:a", key="1", content={})
    (first,) = await frames(communicator, 1)
    await communicator.disconnect()
    for key in ("2", "3"):  # written while disconnected
        await write(actor=docs.actor, namespace="code:a", key=key, content={})
    again, _ = await connect(docs.token, f"?since={first['seq']}&namespaces=code:*")
    resumed = await frames(again, 2)
    assert [f["event"]["resource"] for f in resumed] == ["code:a/2", "code:a/3"]
    assert await nothing_more(again)
    await again.disconnect()


async def test_an_event_whose_publish_was_lost_still_arrives(agents, monkeypatch, settings):
    settings.MEMORYHUB_WS_CATCHUP_SECONDS = 0.2
    docs = agents["docs"]
    communicator = await live(
        docs.token, "?namespaces=code:*"
    )  # so the event is not in the connect's own read of the log
    monkeypatch.setattr("memoryhub.events.services.publish_events", lambda events: None)  # the layer is down
    await write(actor=docs.actor, namespace="code:a", key="lost", content={})
    (frame,) = await frames(communicator, 1, timeout=5)
    assert frame["event"]["resource"] == "code:a/lost"
    await communicator.disconnect()


async def test_out_of_order_publishes_are_delivered_in_seq_order(agents, monkeypatch):
    docs = agents["docs"]
    communicator = await live(
        docs.token, "?namespaces=code:*"
    )  # the cursor is before both events: the later one comes ahead of a gap
    published = []
    monkeypatch.setattr("memoryhub.events.services.publish_events", lambda events: published.extend(events))
    await write(actor=docs.actor, namespace="code:a", key="first", content={})
    await write(actor=docs.actor, namespace="code:a", key="second", content={})
    layer = get_channel_layer()
    # Two server processes' publishes can reach the layer in either order; send the later one first,
    # and the earlier one twice.
    for event in (published[1], published[0], published[0]):
        await layer.group_send(GROUP, message_for(event))
    received = await frames(communicator, 2)
    assert [f["event"]["resource"] for f in received] == ["code:a/first", "code:a/second"]
    assert await nothing_more(communicator)
    await communicator.disconnect()


async def test_suspending_a_connected_agent_closes_its_socket(agents):
    sales = agents["sales"]
    communicator = await live(sales.token)
    await database_sync_to_async(agent_set_status)(actor=SYSTEM, agent_id="sales-1", status="suspended")
    frame = json.loads(await communicator.receive_from(timeout=5))
    assert frame["event"]["type"] == "agent.suspended"
    assert (await communicator.receive_output(timeout=5))["code"] == 4403


async def test_ping_answers_with_the_cursor(agents):
    docs = agents["docs"]
    await write(actor=docs.actor, namespace="code:a", key="before", content={})
    communicator, _ = await connect(docs.token, "?namespaces=code:*")  # no since: the cursor starts at now
    newest = await database_sync_to_async(lambda: Event.objects.latest("seq").seq)()
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from(timeout=5)) == {"type": "pong", "seq": newest}
    await write(actor=docs.actor, namespace="code:a", key="after", content={})
    (frame,) = await frames(communicator, 1)
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from(timeout=5)) == {"type": "pong", "seq": frame["seq"]}
    await communicator.disconnect()


async def test_an_entry_sent_to_my_role_is_pushed_live_as_a_context_frame(agents, make_agent):
    from contexts.services import context_send

    second_sales = await database_sync_to_async(make_agent)("sales-2", "sales")
    support = agents["support"]
    mine = await live(agents["sales"].token)
    colleague = await live(second_sales.token)
    outsider = await live(agents["docs"].token)
    await database_sync_to_async(context_send)(
        actor=support.actor,
        to_role="sales",
        context_type="escalation",
        subject="customer:acme",
        content={"status": "at_risk"},
        requires_ack=True,
    )
    for communicator in (mine, colleague):
        event_frame, context_frame = await frames(communicator, 2)
        assert event_frame["event"]["type"] == "context.sent"
        assert context_frame["type"] == "context"
        entry = context_frame["entry"]
        assert (entry["from_role"], entry["to_role"], entry["context_type"]) == ("support", "sales", "escalation")
        assert entry["content"] == {"status": "at_risk"}
    assert await nothing_more(outsider)  # not addressed to docs, and inbox:* is readable by lead only
    for communicator in (mine, colleague, outsider):
        await communicator.disconnect()


async def test_a_policy_change_applies_to_an_open_socket(agents):
    """The socket's reader rights follow a policy change at once: what the token lookup noted when
    the socket opened (the policy log position) must not pin the socket to the old policies."""
    from policies.selectors import policy_set
    from policies.services import policies_apply
    from tests.conftest import TEST_POLICIES

    docs, sales = agents["docs"], agents["sales"]
    communicator = await live(docs.token)
    await database_sync_to_async(policy_set)()  # the process caches the policies as they are now
    widened = {
        **TEST_POLICIES,
        "namespaces": [
            {**rule, "readers": [*rule["readers"], "docs"]} if rule["pattern"] == "customer:*" else rule
            for rule in TEST_POLICIES["namespaces"]
        ],
    }
    await database_sync_to_async(policies_apply)(actor=SYSTEM, document=widened)
    await write(actor=sales.actor, namespace="customer:acme", key="a", content={"n": 1})
    (frame,) = await frames(communicator, 1)
    assert frame["event"]["resource"] == "customer:acme/a"
    await communicator.disconnect()
