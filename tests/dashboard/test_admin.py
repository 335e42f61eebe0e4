"""Django admin for agents and tokens: lists with filters and search, and every change through the
services (an event with the admin as actor); a new token is shown once, in a message."""

import pytest
from django.test import Client

from memoryhub.agents.models import Agent, AgentToken, token_digest
from memoryhub.events.models import Event

from .conftest import last_event


@pytest.fixture
def admin_client(db, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="correct-horse-battery")
    client = Client()
    client.force_login(user)
    return client


def shown_token(response) -> str:
    """The token in the 'shown once' message."""
    [message] = [str(m) for m in response.context["messages"] if "shown once" in str(m)]
    return message.split("<code>")[1].split("</code>")[0]


@pytest.mark.parametrize(
    "url",
    [
        "/admin/agents/agent/",
        "/admin/agents/agent/?status__exact=active&role=docs",
        "/admin/agents/agent/?q=docs",
        "/admin/agents/agent/add/",
        "/admin/agents/agent/docs-1/change/",
        "/admin/agents/agenttoken/",
        "/admin/agents/agenttoken/?revoked_at__isnull=True&q=docs",
        "/admin/agents/agenttoken/add/",
    ],
)
def test_admin_pages_render(admin_client, docs, url):
    assert admin_client.get(url).status_code == 200


def test_creating_an_agent_in_admin_shows_its_token_once(admin_client, policies):
    response = admin_client.post(
        "/admin/agents/agent/add/", {"id": "review-9", "role": "code-review", "description": "new"}, follow=True
    )
    assert response.status_code == 200
    token = shown_token(response)
    agent = Agent.objects.get(id="review-9")
    assert agent.role == "code-review"
    assert AgentToken.objects.get(digest=token_digest(token)).agent == agent
    event = last_event("agent.created")
    assert (event.actor_kind, event.actor_id) == ("human", "root")
    # The token works, and it is never displayed again.
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/me/").json()["id"] == "review-9"
    assert token not in admin_client.get("/admin/agents/agent/review-9/change/").content.decode()


def test_creating_an_agent_with_a_taken_id_is_refused(admin_client, docs):
    response = admin_client.post("/admin/agents/agent/add/", {"id": "docs-1", "role": "docs"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Event.objects.filter(type="agent.created").count() == 1


def test_suspend_and_resume_actions_go_through_the_kill_switch(admin_client, docs):
    admin_client.post("/admin/agents/agent/", {"action": "suspend", "_selected_action": ["docs-1"]})
    assert Agent.objects.get(id="docs-1").status == "suspended"
    event = last_event("agent.suspended")
    assert (event.actor_id, event.reason) == ("root", "suspended in admin")
    assert docs.client.get("/api/v1/me/").json()["error"]["code"] == "agent_suspended"
    admin_client.post("/admin/agents/agent/", {"action": "resume", "_selected_action": ["docs-1"]})
    assert Agent.objects.get(id="docs-1").status == "active"
    assert last_event("agent.resumed").actor_id == "root"


def test_rotate_token_action_revokes_the_old_token_and_shows_the_new_once(admin_client, docs):
    response = admin_client.post(
        "/admin/agents/agent/", {"action": "rotate_token", "_selected_action": ["docs-1"]}, follow=True
    )
    token = shown_token(response)
    assert docs.client.get("/api/v1/me/").status_code == 401
    assert Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/me/").status_code == 200
    assert last_event("agent.token_created").actor_id == "root"


def test_adding_a_token_in_admin_keeps_the_others_and_shows_it_once(admin_client, docs):
    agent_token = AgentToken.objects.get(agent_id="docs-1")
    response = admin_client.post(
        "/admin/agents/agenttoken/add/", {"agent": "docs-1", "label": "ci runner"}, follow=True
    )
    token = shown_token(response)
    assert AgentToken.objects.get(digest=token_digest(token)).label == "ci runner"
    assert AgentToken.objects.get(id=agent_token.id).revoked_at is None
    assert docs.client.get("/api/v1/me/").status_code == 200


def test_revoke_action_revokes_through_the_service(admin_client, docs):
    token = AgentToken.objects.get(agent_id="docs-1")
    admin_client.post("/admin/agents/agenttoken/", {"action": "revoke", "_selected_action": [token.id]})
    assert AgentToken.objects.get(id=token.id).revoked_at is not None
    assert last_event("agent.token_revoked").actor_id == "root"
    assert docs.client.get("/api/v1/me/").status_code == 401


def test_agents_cannot_be_deleted_in_admin(admin_client, docs):
    assert admin_client.get("/admin/agents/agent/docs-1/delete/").status_code == 403
