"""Agents and tokens: hashed storage, bearer auth, revoke and rotate, create_agent, me/, agents/."""

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from memoryhub.actors import SYSTEM
from memoryhub.agents.models import Agent, AgentToken
from memoryhub.agents.services import agent_create, token_revoke, token_rotate
from memoryhub.errors import Invalid
from memoryhub.events.models import Event


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
def test_create_agent_prints_the_token_alone_on_the_last_line():
    out = io.StringIO()
    call_command("create_agent", "docs-1", "--role", "docs", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    assert token.startswith("mh_") and " " not in token
    assert client_with(token).get("/api/v1/me/").json()["id"] == "docs-1"
    assert Event.objects.filter(type="agent.created", resource="agent:docs-1").count() == 1


@pytest.mark.django_db
def test_tokens_are_stored_hashed_only():
    agent, token = agent_create(actor=SYSTEM, agent_id="a-1", role="docs")
    stored = AgentToken.objects.get(agent=agent)
    assert token not in (stored.digest, stored.prefix)
    assert stored.prefix == token[:10]


@pytest.mark.django_db
def test_revoked_and_rotated_tokens_stop_working():
    agent, token = agent_create(actor=SYSTEM, agent_id="a-1", role="docs")
    new = token_rotate(actor=SYSTEM, agent_id="a-1")
    assert client_with(token).get("/api/v1/me/").status_code == 401
    assert client_with(new).get("/api/v1/me/").status_code == 200
    token_revoke(actor=SYSTEM, token_id=AgentToken.objects.get(revoked_at=None).id)
    assert client_with(new).get("/api/v1/me/").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(("agent_id", "role"), [("Bad Name", "docs"), ("ok", ""), ("x" * 101, "docs")])
def test_invalid_agent_names_are_refused(agent_id, role):
    with pytest.raises(Invalid):
        agent_create(actor=SYSTEM, agent_id=agent_id, role=role)
    assert not Agent.objects.exists()


@pytest.mark.django_db
def test_duplicate_agent_is_refused():
    agent_create(actor=SYSTEM, agent_id="a-1", role="docs")
    with pytest.raises(Invalid):
        agent_create(actor=SYSTEM, agent_id="a-1", role="sales")


def test_me_lists_what_the_agent_may_read_and_write(policies, make_agent):
    docs = make_agent("docs-1", "docs")
    me = docs.client.get("/api/v1/me/").json()
    assert (me["id"], me["role"], me["status"]) == ("docs-1", "docs", "active")
    assert "code:*" in me["writes"] and "agent:private:docs-1" in me["writes"]
    assert "customer:*" not in me["reads"]


def test_agents_list_and_heartbeat_mark_last_seen(policies, make_agent):
    docs = make_agent("docs-1", "docs")
    make_agent("sales-1", "sales")
    Agent.objects.update(last_seen_at=None)
    assert docs.client.post("/api/v1/heartbeat/").status_code == 200
    listed = {a["id"]: a for a in docs.client.get("/api/v1/agents/").json()["results"]}
    assert set(listed) == {"docs-1", "sales-1"}
    assert listed["docs-1"]["last_seen_at"] is not None
    assert listed["sales-1"]["last_seen_at"] is None
    assert [a["id"] for a in docs.client.get("/api/v1/agents/?role=sales").json()["results"]] == ["sales-1"]


def test_only_humans_may_suspend(policies, make_agent, human):
    docs = make_agent("docs-1", "docs")
    assert docs.client.post("/api/v1/agents/docs-1/suspend/").status_code == 403
    response = human.post("/api/v1/agents/docs-1/suspend/", {"reason": "looping"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "suspended"
    assert docs.client.get("/api/v1/me/").json()["error"]["code"] == "agent_suspended"
    assert human.post("/api/v1/agents/nobody/suspend/").status_code == 404
    assert human.post("/api/v1/agents/docs-1/resume/").json()["status"] == "active"
    assert docs.client.get("/api/v1/me/").status_code == 200
