"""Every /api/ error has the shape {"error": {"code", "message", "details"}} — one test per status."""

import json

import pytest
from rest_framework.test import APIClient

from memoryhub.actors import SYSTEM
from memoryhub.agents.services import agent_set_status


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


@pytest.fixture
def agent(policies, make_agent):
    return make_agent("sales-1", "sales")


def put(client, path, body, **headers):
    return client.put(
        path, json.dumps(body) if not isinstance(body, str) else body, content_type="application/json", **headers
    )


def test_400_invalid_with_field_details(agent):
    error = assert_error(put(agent.client, "/api/v1/memories/customer:a/k/", {"content": "text"}), 400, "invalid")
    assert "content" in error["details"]


def test_400_malformed_json(agent):
    assert_error(put(agent.client, "/api/v1/memories/customer:a/k/", "{"), 400, "malformed_json")


def test_401_without_or_with_an_unknown_token(db):
    response = APIClient().get("/api/v1/me/")
    assert_error(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer mh_not-a-token")
    assert_error(stranger.get("/api/v1/me/"), 401, "unauthenticated")


def test_403_forbidden_names_the_policy(agent):
    error = assert_error(put(agent.client, "/api/v1/memories/code:style/k/", {"content": {}}), 403, "forbidden")
    assert error["details"]["policy"]["pattern"] == "code:*"


def test_403_field_not_owned(agent, make_agent):
    support = make_agent("support-1", "support")
    assert_error(
        put(support.client, "/api/v1/memories/customer:a/k/", {"content": {"deal_stage": "won"}}),
        403,
        "field_not_owned",
    )


def test_403_agent_suspended(agent):
    agent_set_status(actor=SYSTEM, agent_id="sales-1", status="suspended", reason="runaway")
    assert_error(agent.client.get("/api/v1/me/"), 403, "agent_suspended")


def test_404_for_unknown_endpoints_and_objects(agent):
    assert_error(agent.client.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert_error(agent.client.get("/api/v1/memories/customer:a/none/"), 404, "not_found")


def test_405_method_not_allowed(agent):
    assert_error(agent.client.post("/api/v1/me/"), 405, "method_not_allowed")


def test_412_version_conflict_carries_current(agent):
    put(agent.client, "/api/v1/memories/customer:a/k/", {"content": {"v": 1}})
    error = assert_error(
        put(agent.client, "/api/v1/memories/customer:a/k/", {"content": {}}, HTTP_IF_MATCH='"7"'),
        412,
        "version_conflict",
    )
    assert error["details"]["current"]["version"] == 1


def test_413_too_large(agent, settings):
    settings.MEMORYHUB_MAX_CONTENT_BYTES = 50
    assert_error(put(agent.client, "/api/v1/memories/customer:a/k/", {"content": {"x": "y" * 100}}), 413, "too_large")


def test_422_idempotency_key_reused(agent):
    put(agent.client, "/api/v1/memories/customer:a/k/", {"content": {}}, HTTP_IDEMPOTENCY_KEY="k")
    assert_error(
        put(agent.client, "/api/v1/memories/customer:a/j/", {"content": {}}, HTTP_IDEMPOTENCY_KEY="k"),
        422,
        "idempotency_key_reused",
    )


def test_423_locked_namespace_without_lock(make_agent, policies):
    inventory = make_agent("inventory-1", "inventory")
    assert_error(put(inventory.client, "/api/v1/memories/inventory:sku/k/", {"content": {}}), 423, "held")


def test_428_precondition_required(agent):
    put(agent.client, "/api/v1/memories/customer:a/k/", {"content": {}})
    assert_error(
        put(agent.client, "/api/v1/memories/customer:a/k/", {"content": {"b": 1}}), 428, "precondition_required"
    )


def test_500_is_in_the_error_shape_too(agent, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("memoryhub.events.api.events_visible", explode)
    agent.client.raise_request_exception = False
    assert_error(agent.client.get("/api/v1/events/"), 500, "server_error")


def test_non_staff_session_users_are_refused(db, django_user_model):
    user = django_user_model.objects.create_user("bob", password="x-long-password")
    client = APIClient()
    client.force_login(user)
    assert_error(client.get("/api/v1/me/"), 403, "forbidden")


def test_human_session_writes_need_csrf(human):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(human.user)
    assert_error(put(client, "/api/v1/memories/customer:a/k/", {"content": {}}), 403, "forbidden")
    assert client.get("/api/v1/me/").status_code == 200
