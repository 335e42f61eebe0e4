"""The demo swarm: simulated agents (threads, each a HubClient with its own token) acting out the
stories of SCENARIOS.md against a running hub, narrating as they go, so a person watching the dashboard
sees coordination happen. Only the client is used here: the swarm is an ordinary set of agents.

Each scenario checks its own outcome (the count is exact, the task ran once, the stale write was
refused); `Swarm.run` returns those verdicts."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from memoryhub.client import (
    ContextEntry,
    FieldNotOwned,
    HubClient,
    LockHeld,
    StaleFencingToken,
    VersionConflict,
    merge_patch,
)

# The agents the scenarios need: setup_demo's, plus a second docs worker for the duplicate-work story.
AGENTS = {
    "sales-1": "sales",
    "support-1": "support",
    "inventory-1": "inventory",
    "orders-1": "orders",
    "docs-1": "docs",
    "docs-2": "docs",
    "lead-1": "lead",
    "scribe-1": "scribe",
}

STOCK = ("counter:stock", "sku-42")  # optimistic namespace
SHELF = ("inventory:sku-1", "count")  # locked namespace
PRICING = ("inventory:pricing", "table")  # locked namespace
CUSTOMER = ("customer:acme", "profile")
# The lifecycle scenarios wait for the hub's sweeper (every MEMORYHUB_SWEEP_INTERVAL s, 5 by default;
# celery beat in production) to announce a stale fact and to queue a summarization: at most this long.
SWEEPER_WAIT = 30.0
POLL = 0.25


def lock_name(place: tuple[str, str]) -> str:
    return f"memory:{place[0]}/{place[1]}"


@dataclass
class Outcome:
    round: int
    scenario: str
    ok: bool
    detail: str


class Swarm:
    def __init__(
        self, url: str, tokens: dict[str, str], *, out: Callable[[str], None] = print, pace: float = 1.0
    ) -> None:
        self.url = url
        self.hubs = {agent_id: HubClient(url, token=token) for agent_id, token in tokens.items()}
        self.out = out
        self.pace = pace
        self.run_id = uuid.uuid4().hex[:8]
        self._print = threading.Lock()

    # --- narration -------------------------------------------------------------------------------

    def say(self, who: str, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        with self._print:
            self.out(f"{stamp}  {who:<12} {text}")

    def title(self, text: str) -> None:
        with self._print:
            self.out(f"\n── {text} " + "─" * max(0, 72 - len(text)))

    def pause(self, factor: float = 1.0) -> None:
        if self.pace:
            time.sleep(self.pace * factor)

    def close(self) -> None:
        for hub in self.hubs.values():
            hub.close()

    # --- running ---------------------------------------------------------------------------------

    def run(self, rounds: int = 1) -> list[Outcome]:
        outcomes = []
        scenarios = [
            ("inventory race, optimistic", self.inventory_race_optimistic),
            ("inventory race, locked + fencing", self.inventory_race_locked),
            ("escalation during an upsell", self.escalation_during_upsell),
            ("duplicate work and a retry storm", self.duplicate_work),
            ("a crashed lock holder", self.crashed_lock_holder),
            ("opposite lock orders, no deadlock", self.no_deadlock),
            ("a stale fact caught and re-verified", self.stale_fact),
            ("an episode history summarised", self.episodes_summarised),
        ]
        for number in range(1, rounds + 1):
            for name, scenario in scenarios:
                self.title(f"round {number}: {name}")
                ok, detail = scenario(number)
                self.say("✓" if ok else "✗", detail)
                outcomes.append(Outcome(number, name, ok, detail))
                self.pause()
        return outcomes

    def together(self, *actions: Callable[[], None]) -> None:
        """Run the actions in threads at once; re-raise the first failure."""
        errors: list[BaseException] = []

        def guarded(action: Callable[[], None]) -> None:
            try:
                action()
            except BaseException as exc:  # surfaced below, not lost in a thread
                errors.append(exc)

        threads = [threading.Thread(target=guarded, args=(action,)) for action in actions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    # --- 1. the inventory race -------------------------------------------------------------------

    def inventory_race_optimistic(self, number: int) -> tuple[bool, str]:
        """Orders sells 3 and inventory corrects -1, both from the same read of 5: the second write is
        refused with the current state, re-read and re-applied, so the store ends at 1, like the shelf."""
        inventory, orders = self.hubs["inventory-1"], self.hubs["orders-1"]
        start = inventory.update(*STOCK, lambda c: {**c, "n": 5}, reason="shelf counted: 5 units")
        self.say("inventory-1", f"counts the shelf: 5 units ({STOCK[0]}/{STOCK[1]} v{start.version})")
        both_read = threading.Barrier(2)

        def agent(hub: HubClient, who: str, delta: int, why: str) -> None:
            seen = hub.get(*STOCK)
            self.say(who, f"reads {seen.content['n']} units (v{seen.version}) and {why}")
            both_read.wait()
            try:
                written = hub.put(
                    *STOCK, {**seen.content, "n": seen.content["n"] + delta}, version=seen.version, reason=why
                )
            except VersionConflict as conflict:
                now = conflict.current
                self.say(
                    who,
                    f"✗ write refused (412): the store is at v{now.version} with {now.content['n']} units, "
                    f"not v{seen.version} — re-reads and applies {delta:+d} again",
                )
                written = hub.update(*STOCK, lambda c: {**c, "n": c["n"] + delta}, reason=f"{why} (re-applied)")
            self.say(who, f"writes {written.content['n']} unit(s) (v{written.version})")

        self.together(
            lambda: agent(orders, "orders-1", -3, "sells 3"),
            lambda: agent(inventory, "inventory-1", -1, "applies a supplier correction of -1"),
        )
        final = inventory.get(*STOCK).content["n"]
        return final == 1, f"the store says {final} unit(s); the shelf holds 1 — no update lost"

    def inventory_race_locked(self, number: int) -> tuple[bool, str]:
        """The same race in a `locked` namespace: each writer holds the lock and presents its fencing
        token, so the read-modify-writes run one after the other."""
        inventory, orders = self.hubs["inventory-1"], self.hubs["orders-1"]
        with inventory.lock(lock_name(SHELF), ttl=10, wait=20) as lease:
            inventory.put(*SHELF, {"units": 5}, fencing_token=lease.fencing_token, reason="shelf counted: 5 units")
        self.say("inventory-1", f"counts the shelf under lock {lease.fencing_token}: 5 units")
        both_ready = threading.Barrier(2)

        def agent(hub: HubClient, who: str, delta: int, why: str) -> None:
            both_ready.wait()
            with hub.lock(lock_name(SHELF), ttl=10, wait=20) as held:
                seen = hub.get(*SHELF)
                self.say(
                    who, f"holds {lock_name(SHELF)} (fencing token {held.fencing_token}), reads {seen.content['units']}"
                )
                self.pause(0.3)
                written = hub.put(
                    *SHELF, {"units": seen.content["units"] + delta}, fencing_token=held.fencing_token, reason=why
                )
                self.say(who, f"{why}: writes {written.content['units']} and releases")

        self.together(
            lambda: agent(orders, "orders-1", -3, "sells 3"),
            lambda: agent(inventory, "inventory-1", -1, "supplier correction -1"),
        )
        final = inventory.get(*SHELF).content["units"]
        return final == 1, f"{SHELF[0]}/{SHELF[1]} is {final} unit(s): the lock made the writes take turns"

    # --- 3. the upsell during an escalation ------------------------------------------------------

    def escalation_during_upsell(self, number: int) -> tuple[bool, str]:
        """Support marks Acme at risk and escalates to sales; sales, about to upsell from an older read,
        gets the entry live, asks activity/ and defers. Sales may not touch support's `health` field:
        it sends a handoff instead."""
        sales, support = self.hubs["sales-1"], self.hubs["support-1"]
        acme = {"name": "Acme Corp", "deal_stage": "proposal", "seats": 40}
        before = sales.update(*CUSTOMER, lambda content: content, default=acme, reason="demo data")
        assert before.content is not None  # update() returns the memory as written, never a deleted one
        self.say("sales-1", f"reads {CUSTOMER[0]} (stage {before.content.get('deal_stage')!r}) and drafts an upsell")
        live, listener, stream = self._listen_for_escalations(sales)

        marked = support.update(
            *CUSTOMER,
            lambda c: merge_patch(c, {"health": "at_risk", "incident": f"INC-{self.run_id}-{number}"}),
            reason="customer reports an outage",
        )
        self.say("support-1", f"marks {CUSTOMER[0]} health=at_risk (v{marked.version})")
        sent = support.send(
            to_role="sales",
            context_type="escalation",
            subject=CUSTOMER[0],
            content={"health": "at_risk", "why": "production outage", "ask": "no sales contact until resolved"},
            requires_ack=True,
        )
        self.say("support-1", f"escalates to role sales (entry #{sent.id}, ack required)")

        entry = self._await_escalation(sales, sent.id, live)
        stream.close()
        listener.join(timeout=10)

        activity = sales.activity(CUSTOMER[0])
        if activity.proceed:
            self.say("sales-1", "✗ activity/ says proceed: would send the upsell")
        else:
            self.say("sales-1", f"asks activity/: defer to {activity.defer_to} ({activity.reason}) — upsell held")

        current = sales.get(*CUSTOMER)
        try:
            sales.patch(*CUSTOMER, {"health": "ok"}, version=current.version, reason="deal needs it")
            refused_field = False
            self.say("sales-1", "✗ changed support's health field")
        except FieldNotOwned as refused:
            refused_field = True
            owners = ", ".join(refused.fields.get("health", []))
            self.say("sales-1", f"✗ may not change 'health' (owned by {owners}): sends a handoff instead")
            sales.send(
                to_role="support",
                context_type="handoff",
                subject=CUSTOMER[0],
                content={"field": "health", "proposal": "ok", "why": "customer confirmed recovery on the call"},
            )
        sales.ack(entry.id, note="upsell on hold until the incident is closed")
        self.say("sales-1", f"acks escalation #{entry.id}: 'upsell on hold until the incident is closed'")
        for handoff in support.inbox(context_type="handoff"):
            handoff.ack(note="will check with the customer")
            self.say("support-1", f"acks handoff #{handoff.id} from {handoff.from_agent}")

        ok = not activity.proceed and activity.defer_to == "support" and refused_field
        return ok, "sales deferred to support; the owned field was refused and handed off"

    def _listen_for_escalations(self, hub: HubClient):
        """Sales listens on the websocket: context frames for entries sent to it arrive live."""
        live: queue.Queue[ContextEntry] = queue.Queue()
        stream = hub.events(since=None, contexts=True, max_backoff=1.0)

        def listen() -> None:
            try:
                for item in stream:
                    if isinstance(item, ContextEntry) and item.context_type == "escalation":
                        live.put(item)
            except Exception:  # the inbox poll below takes over
                pass

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        return live, thread, stream

    def _await_escalation(self, hub: HubClient, entry_id: int, live: queue.Queue) -> ContextEntry:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                entry = live.get(timeout=0.5)
            except queue.Empty:
                continue
            if entry.id == entry_id:
                self.say("sales-1", f"receives escalation #{entry.id} live over the websocket: {entry.content['why']}")
                return entry
        [entry] = [e for e in hub.inbox(state="unacked", context_type="escalation") if e.id == entry_id]
        self.say("sales-1", f"finds escalation #{entry.id} in its inbox: {entry.content['why']}")
        return entry

    # --- 4 and 5. duplicate work, the retry storm ------------------------------------------------

    def duplicate_work(self, number: int) -> tuple[bool, str]:
        """The lead queues pages to render (re-sending one three times, as a retry storm would, with one
        idempotency key); two docs workers claim concurrently: each task is done exactly once."""
        lead = self.hubs["lead-1"]
        pages = ["api.md", "auth.md", "quickstart.md", "webhooks.md", "faq.md"]
        created = []
        for page in pages:
            key = f"demo-{self.run_id}-{number}-{page}"
            sends = 3 if page == pages[0] else 1
            answers = [
                lead.create_task("docs", "render", {"page": page, "round": number}, idempotency_key=key)
                for _ in range(sends)
            ]
            created.append(answers[0].id)
            if sends > 1:
                ids = sorted({a.id for a in answers})
                self.say("lead-1", f"times out and re-sends 'render {page}' {sends}× with one key: tasks {ids}")
        self.say("lead-1", f"queued {len(pages)} render tasks for role docs: {created}")

        done: dict[str, list[int]] = {"docs-1": [], "docs-2": []}

        def worker(who: str) -> None:
            hub = self.hubs[who]
            while (task := hub.claim(kinds=["render"], ttl=60)) is not None:
                self.say(who, f"claims task #{task.id} (render {task.payload.get('page')})")
                self.pause(0.2)
                task.complete({"rendered_by": who})
                done[who].append(task.id)

        self.together(lambda: worker("docs-1"), lambda: worker("docs-2"))
        everything = done["docs-1"] + done["docs-2"]
        ok = len(everything) == len(set(everything)) and set(created) <= set(everything)
        split = ", ".join(f"{who} did {len(ids)}" for who, ids in done.items())
        return ok, f"{len(set(created))} tasks, each done once ({split}); the retried create made no duplicate"

    # --- 6. the crashed lock holder --------------------------------------------------------------

    def crashed_lock_holder(self, number: int) -> tuple[bool, str]:
        """Inventory takes the pricing lock with a short lease and 'crashes' (stops heartbeating). Orders
        waits; the lease expires and orders gets the lock with a higher fencing token. When inventory
        wakes up and writes with its old token, the hub refuses it."""
        inventory, orders = self.hubs["inventory-1"], self.hubs["orders-1"]
        ttl = 3
        stale = inventory.acquire(lock_name(PRICING), ttl=ttl, wait=20)
        inventory.put(*PRICING, {"sku-1": 19.0, "sku-2": 7.5}, fencing_token=stale.fencing_token, reason="price update")
        self.say(
            "inventory-1",
            f"takes the pricing lock (fencing token {stale.fencing_token}, {ttl}s lease), writes, and crashes",
        )
        started = time.monotonic()
        self.say("orders-1", "wants the pricing lock and waits for it (up to 20 s)")
        try:
            lease = orders.acquire(lock_name(PRICING), ttl=10, wait=20)
        except LockHeld as held:
            return False, f"the lock was never freed: {held.holders}"
        waited = time.monotonic() - started
        self.say(
            "orders-1",
            f"gets it after {waited:.1f}s, when the dead holder's lease expired: "
            f"fencing token {lease.fencing_token} > {stale.fencing_token}",
        )
        orders.put(*PRICING, {"sku-1": 18.0, "sku-2": 7.5}, fencing_token=lease.fencing_token, reason="promo price")
        self.say("orders-1", "writes the promo price")
        try:
            inventory.put(
                *PRICING, {"sku-1": 25.0, "sku-2": 7.5}, fencing_token=stale.fencing_token, reason="late write"
            )
            refused = False
            self.say("inventory-1", "✗ wrote with a stale token")
        except StaleFencingToken as error:
            refused = True
            self.say(
                "inventory-1",
                f"wakes from its pause, writes with token {stale.fencing_token}: ✗ refused ({error.code})",
            )
        lease.release()
        price = orders.get(*PRICING).content["sku-1"]
        ok = refused and lease.fencing_token > stale.fencing_token and price == 18.0
        return ok, f"the lease expired by itself, the late write was fenced off; sku-1 costs {price}"

    # --- 7. the deadlock that cannot happen ------------------------------------------------------

    def no_deadlock(self, number: int) -> tuple[bool, str]:
        """Inventory asks for [shelf, pricing], orders for [pricing, shelf], at the same moment: the hub
        takes every lock set in one global order, so one waits for the other instead of both forever."""
        inventory, orders = self.hubs["inventory-1"], self.hubs["orders-1"]
        names = [lock_name(SHELF), lock_name(PRICING)]
        both_ready = threading.Barrier(2)
        tokens: list[int] = []

        def agent(hub: HubClient, who: str, order: list[str]) -> None:
            both_ready.wait()
            with hub.lock(order, ttl=10, wait=20) as held:
                tokens.append(held.fencing_token)
                self.say(who, f"holds {' + '.join(n.split('/')[0].removeprefix('memory:') for n in order)}")
                self.pause(0.3)

        self.together(
            lambda: agent(inventory, "inventory-1", names),
            lambda: agent(orders, "orders-1", list(reversed(names))),
        )
        return len(tokens) == 2, "both got both locks, one after the other: no deadlock"

    # --- 8. the stale fact -----------------------------------------------------------------------

    def stale_fact(self, number: int) -> tuple[bool, str]:
        """Support records Acme's support SLA as a fact in `facts:*`, whose policy says a fact not
        re-verified for 2 s is stale. The hub's sweeper announces it once to the writers' role as a
        `stale` entry; support re-checks the fact and verifies it: fresh again, no new version."""
        support = self.hubs["support-1"]
        place = ("facts:acme", f"sla-{self.run_id}-{number}")
        # Valid for a minute only, so the demo's fact stops going stale (and being announced) after it.
        until = datetime.now(UTC) + timedelta(seconds=60)
        written = support.put(*place, {"response_hours": 4}, kind="semantic", valid_until=until, reason="contract")
        self.say("support-1", f"records {place[0]}/{place[1]}: 4 h response (v{written.version}, verified now)")
        self.say("support-1", "waits for its stale notice (facts:* go stale 2 s after their last verification)")
        notice = self._await(lambda: self._stale_notice(support, place))
        if notice is None:
            return False, f"no stale notice within {SWEEPER_WAIT:.0f} s: is the hub's sweeper running?"
        seen = support.get(*place)
        self.say(
            "support-1",
            f"gets stale notice #{notice.id}: {notice.subject} — reads it: stale={seen.stale}, "
            f"last verified by {seen.verified_by}",
        )
        self.pause(0.3)
        verified = support.verify(*place, reason="re-checked against the signed contract: still 4 h")
        notice.ack(note="re-checked and verified")
        self.say("support-1", f"re-checks the contract (still 4 h) and verifies it: stale={verified.stale}")
        again = support.get(*place)
        ok = seen.stale and not again.stale and again.version == written.version and again.verified_at is not None
        return ok, f"the stale fact was announced, re-checked and verified (still v{again.version}, fresh again)"

    def _stale_notice(self, hub: HubClient, place: tuple[str, str]) -> ContextEntry | None:
        for entry in hub.inbox(state="unacked", context_type="stale"):
            if (entry.content.get("namespace"), entry.content.get("key")) == place:
                return entry
        return None

    def _await[T](self, found: Callable[[], T | None]) -> T | None:
        """Poll `found` until it returns something, for at most SWEEPER_WAIT seconds."""
        deadline = time.monotonic() + SWEEPER_WAIT
        while time.monotonic() < deadline:
            if (value := found()) is not None:
                return value
            time.sleep(POLL)
        return None

    # --- 9. the episode history summarised -------------------------------------------------------

    def episodes_summarised(self, number: int) -> tuple[bool, str]:
        """Orders logs its shipments as episodes in `log:*`, whose policy summarizes episodes 2 s after
        their time window closes: the hub queues a summarization task for role scribe with the
        episodes in its payload; the scribe claims it, summarizes, completes it. The hub stores the
        summary as a semantic memory with derived_from and archives the episodes (kept for audit)."""
        orders, scribe = self.hubs["orders-1"], self.hubs["scribe-1"]
        namespace = f"log:orders:{self.run_id}-{number}"
        shipments = [("sku-1", 2), ("sku-2", 1), ("sku-1", 5), ("sku-3", 1)]
        for index, (sku, units) in enumerate(shipments):
            orders.put(namespace, f"ship-{index}", {"sku": sku, "units": units}, kind="episodic", reason="shipped")
        self.say("orders-1", f"logs {len(shipments)} shipments as episodes in {namespace}")
        self.say("scribe-1", "waits for summarization work (episodes in log:* are summarized once 2 s old)")
        keys = {f"{namespace}/ship-{index}" for index in range(len(shipments))}
        summarized: set[str] = set()

        def summarize_one() -> bool | None:
            task = scribe.claim(kinds=["memory.summarize"], ttl=60)
            if task is None:
                return None
            episodes = task.payload["episodes"]
            self.say("scribe-1", f"claims task #{task.id} ({len(episodes)} episodes of {task.payload['namespace']})")
            units: dict[str, int] = {}
            for episode in episodes:
                sku = episode["content"].get("sku", "?")
                units[sku] = units.get(sku, 0) + int(episode["content"].get("units", 0))
            text = ", ".join(f"{n} × {sku}" for sku, n in sorted(units.items()))
            task.complete({"summary": {"shipments": len(episodes), "units": units, "text": f"shipped {text}"}})
            self.say("scribe-1", f"completes it with the summary 'shipped {text}' ({task.payload['summary_key']})")
            if task.payload["namespace"] == namespace:
                summarized.update(f"{namespace}/{e['key']}" for e in episodes)
            return True if summarized >= keys else None

        # The episodes may fall in two time windows: one task each.
        if not self._await(summarize_one):
            return False, f"not summarized within {SWEEPER_WAIT:.0f} s: is the hub's sweeper running?"
        summaries = orders.list_memories(namespace=namespace)
        kept = [m for m in orders.list_memories(namespace=namespace, include_invalid=True) if m.archived_at]
        sources = {source for summary in summaries for source in summary.derived_from or []}
        self.say(
            "orders-1",
            f"reads {namespace}: {len(summaries)} summary(ies) from {len(sources)} episodes; "
            f"{len(kept)} episodes archived (include_invalid shows them)",
        )
        ok = sources == keys and all(m.kind == "semantic" for m in summaries) and len(kept) == len(keys)
        return ok, f"{len(keys)} episodes became {len(summaries)} summary(ies) with derived_from; episodes archived"
