"""Every refusal arrives as a typed exception carrying the hub's error shape."""

from __future__ import annotations

import pytest

from memoryhub.actors import SYSTEM
from memoryhub.agents.services import agent_set_status
from memoryhub.client import (
    AgentSuspended,
    FieldNotOwned,
    Forbidden,
    Held,
    HubClient,
    HubError,
    IdempotencyKeyReused,
    Invalid,
    NotFound,
    PreconditionRequired,
    Retry,
    Throttled,
    TooLarge,
    TransportError,
    Unauthenticated,
    VersionConflict,
)
from tests.servers import free_port, server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def test_stale_version_is_rejected_with_current_state(connect):
    hub = connect("docs-1", "docs")
    hub.put("code:review", "pr-1", {"verdict": "pending"})
    hub.put("code:review", "pr-1", {"verdict": "lgtm"}, version=1)
    with pytest.raises(VersionConflict) as refused:
        hub.put("code:review", "pr-1", {"verdict": "reject"}, version=1)
    error = refused.value
    assert (error.status, error.code) == (412, "version_conflict")
    assert error.current.version == 2
    assert error.current.content == {"verdict": "lgtm"}
    assert error.as_dict()["error"]["details"]["current"]["version"] == 2


def test_update_without_a_version_in_an_optimistic_namespace_needs_a_precondition(connect):
    hub = connect("docs-1", "docs")
    hub.put("code:review", "pr-1", {"verdict": "pending"})
    with pytest.raises(PreconditionRequired) as refused:
        hub.put("code:review", "pr-1", {"verdict": "lgtm"})
    assert refused.value.status == 428


def test_writing_outside_the_policy_is_forbidden_with_the_policy(connect):
    sales = connect("sales-1", "sales")
    with pytest.raises(Forbidden) as refused:
        sales.put("code:review", "pr-1", {"verdict": "ship it"})
    assert refused.value.code == "forbidden"
    assert refused.value.details  # names the policy that denied


def test_changing_a_field_owned_by_another_role_names_the_owner(connect):
    sales = connect("sales-1", "sales")
    product = connect("product-1", "product")
    sales.put("customer:acme", "profile", {"deal_stage": "proposal"})
    with pytest.raises(FieldNotOwned) as refused:
        product.put("customer:acme", "profile", {"deal_stage": "won"}, version=1)
    assert refused.value.fields == {"deal_stage": ["sales"]}
    assert isinstance(refused.value, Forbidden)


def test_absent_and_unreadable_memories_are_both_not_found(connect):
    docs = connect("docs-1", "docs")
    support = connect("support-1", "support")
    support.put("customer:vip:acme", "profile", {"tier": "gold"})
    with pytest.raises(NotFound):
        docs.get("code:review", "nothing-here")
    with pytest.raises(NotFound):
        docs.get("customer:vip:acme", "profile")


def test_content_over_the_namespace_limit_is_too_large(connect):
    hub = connect("worker-1", "worker")
    with pytest.raises(TooLarge) as refused:
        hub.put("small:box", "k", {"blob": "x" * 500})
    assert refused.value.status == 413


def test_locked_namespace_written_without_a_lock_is_held(connect):
    inventory = connect("inventory-1", "inventory")
    with pytest.raises(Held) as refused:
        inventory.put("inventory:sku-1", "count", {"units": 5})
    assert refused.value.status == 423


def test_bad_input_is_invalid_with_field_errors(connect):
    hub = connect("docs-1", "docs")
    with pytest.raises(Invalid) as refused:
        hub.put("code:review", "pr-1", {"verdict": "x"}, kind="nonsense")
    assert "kind" in refused.value.details


def test_unknown_token_is_unauthenticated(hub_url, policies):
    with HubClient(hub_url, token="mh_not-a-token") as hub, pytest.raises(Unauthenticated) as refused:
        hub.me()
    assert refused.value.status == 401


def test_a_suspended_agent_is_refused(connect):
    hub = connect("runaway-1", "worker")
    hub.put("scratch:loop", "k", {"i": 1})
    agent_set_status(actor=SYSTEM, agent_id="runaway-1", status="suspended", reason="looping")
    with pytest.raises(AgentSuspended) as refused:
        hub.put("scratch:loop", "k", {"i": 2})
    assert refused.value.code == "agent_suspended"


def test_the_same_idempotency_key_with_another_body_is_rejected(connect):
    hub = connect("worker-1", "worker")
    headers = {"Idempotency-Key": "order-7"}
    hub.request("PUT", "memories/scratch:orders/o-7/", json={"content": {"qty": 1}}, headers=headers)
    with pytest.raises(IdempotencyKeyReused) as refused:
        hub.request("PUT", "memories/scratch:orders/o-7/", json={"content": {"qty": 2}}, headers=headers)
    assert refused.value.status == 422


def test_over_the_rate_limit_is_throttled_with_retry_after(transactional_db, policies, make_agent):
    persona = make_agent("chatty-1", "worker")
    with (
        server(env={"MEMORYHUB_RATE_LIMIT": "2/min"}) as url,
        HubClient(url, persona.token, retry=Retry(1)) as hub,
        pytest.raises(Throttled) as refused,
    ):
        for _ in range(5):
            hub.me()
    assert refused.value.status == 429
    assert refused.value.retry_after > 0


def test_an_unreachable_hub_is_a_transport_error_after_retries(policies):
    unreachable = f"http://127.0.0.1:{free_port()}"
    with (
        HubClient(unreachable, "t", retry=Retry(attempts=2, base=0.01)) as hub,
        pytest.raises(TransportError) as refused,
    ):
        hub.me()
    assert isinstance(refused.value, HubError)
