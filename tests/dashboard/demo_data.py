"""Demo-like activity for screenshots: agents of the test policies doing what the scenarios describe,
through the REST API of a running hub (so the log looks like the real thing)."""

from __future__ import annotations

import httpx

from memoryhub.actors import Actor
from memoryhub.locks.services import hold_place


def load_demo_activity(make_agent, hub: str) -> None:
    personas = {
        agent_id: make_agent(agent_id, role)
        for agent_id, role in [
            ("sales-1", "sales"),
            ("support-1", "support"),
            ("inventory-1", "inventory"),
            ("orders-1", "orders"),
            ("docs-1", "docs"),
            ("code-review-1", "code-review"),
        ]
    }

    def client(agent_id: str) -> httpx.Client:
        token = personas[agent_id].token
        return httpx.Client(base_url=f"{hub}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10)

    sales, support, inventory, orders, docs, review = (client(a) for a in personas)

    def put(who, path, content, reason, version=None):
        headers = {"If-Match": f'"{version}"'} if version else {}
        return who.put(f"/memories/{path}/", json={"content": content, "reason": reason}, headers=headers)

    put(sales, "customer:acme/profile", {"name": "Acme Corp", "deal_stage": "proposal", "seats": 40}, "first call")
    put(
        sales,
        "customer:acme/profile",
        {"name": "Acme Corp", "deal_stage": "negotiation", "seats": 60},
        "CFO wants 60 seats",
        1,
    )
    support.patch(
        "/memories/customer:acme/profile/",
        json={"content": {"health": "at_risk"}, "reason": "three P1 tickets this week"},
        headers={"If-Match": '"2"'},
    )
    put(sales, "customer:acme/profile", {"name": "Acme Corp", "deal_stage": "closed_won"}, "upsell", 2)  # stale: 412
    put(docs, "code:docs/readme", {"status": "draft", "sections": ["intro", "auth"]}, "outline")
    put(docs, "code:docs/readme", {"status": "review", "sections": ["intro", "auth", "errors"]}, "errors section", 1)
    put(review, "code:review/pr-42", {"verdict": "changes requested"}, "missing tests")
    put(review, "code:review/pr-42", {"verdict": "lgtm"}, "tests added", 1)
    put(docs, "code:review/pr-42", {"verdict": "merge"}, "stale read", 1)  # stale: 412
    support.post(
        "/contexts/",
        json={
            "to_role": "sales",
            "context_type": "escalation",
            "subject": "customer:acme",
            "content": {"summary": "Acme is at risk: no upsell until the P1s are fixed"},
            "requires_ack": True,
        },
    )
    docs.post("/contexts/", json={"to_agent": "code-review-1", "context_type": "handoff", "content": {"pr": 42}})
    inventory.post("/locks/", json={"resources": ["inventory:sku-42"], "mode": "exclusive", "ttl_seconds": 600})
    orders.post("/locks/", json={"resources": ["inventory:sku-42"], "ttl_seconds": 30, "wait_seconds": 1})
    review.post("/locks/", json={"resources": ["code:review/pr-42"], "mode": "shared", "ttl_seconds": 300})
    # A human froze the pricing table while investigating (holds are placed by humans only).
    hold_place(actor=Actor(kind="human", id="olivia", role="human"), resource="pricing:eu", reason="audit in progress")
    for each in (sales, support, inventory, orders, docs, review):
        each.post("/heartbeat/")
        each.close()
