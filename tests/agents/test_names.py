"""Reserved words and names that would confuse identities are refused for agent ids and roles, by the
create_agent command, admin and the service, and in policy files (issue 12, L6)."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from memoryhub.actors import SYSTEM
from memoryhub.agents.models import Agent
from memoryhub.agents.services import agent_create
from memoryhub.errors import Invalid
from memoryhub.memories.services import memory_put
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES

pytestmark = pytest.mark.django_db


def test_create_agent_refuses_the_role_self(policies, make_agent):
    """The probe: `create_agent evil --role self` made an agent that read every agent:private:*."""
    owner = make_agent("p1", "docs")
    memory_put(actor=owner.actor, namespace="agent:private:p1", key="diary", content={"secret": 1})
    with pytest.raises(CommandError, match="reserved"):
        call_command("create_agent", "evil", "--role", "self", stdout=io.StringIO())
    assert not Agent.objects.filter(id="evil").exists()


@pytest.mark.parametrize("word", ["self", "human", "system"])
def test_reserved_words_are_refused_as_roles_and_as_ids(word):
    with pytest.raises(Invalid) as as_role:
        agent_create(actor=SYSTEM, agent_id="a-1", role=word)
    with pytest.raises(Invalid) as as_id:
        agent_create(actor=SYSTEM, agent_id=word, role="docs")
    assert "reserved" in str(as_role.value.details["role"]) and "reserved" in str(as_id.value.details["id"])
    assert not Agent.objects.exists()


def test_star_is_refused_as_a_role_and_an_id():
    for agent_id, role in (("a-1", "*"), ("*", "docs")):
        with pytest.raises(Invalid):
            agent_create(actor=SYSTEM, agent_id=agent_id, role=role)
    assert not Agent.objects.exists()


def test_an_agent_id_may_not_be_a_role_name(policies, make_agent):
    """Under `inbox:*: readers [self]` an agent called `support` would read the support role's inbox."""
    make_agent("support-1", "support")
    with pytest.raises(Invalid, match="is a role"):
        agent_create(actor=SYSTEM, agent_id="support", role="sales")
    with pytest.raises(Invalid, match="is a role"):
        agent_create(actor=SYSTEM, agent_id="lead", role="lead")
    assert sorted(Agent.objects.values_list("id", flat=True)) == ["support-1"]


def test_a_role_may_not_be_an_agent_id(policies, make_agent):
    make_agent("p1", "docs")
    with pytest.raises(Invalid, match="agent's id"):
        agent_create(actor=SYSTEM, agent_id="evil", role="p1")
    assert not Agent.objects.filter(id="evil").exists()


def test_admin_refuses_a_reserved_role_with_the_reason_on_the_form(django_user_model):
    user = django_user_model.objects.create_superuser("root", password="correct-horse-battery")
    client = Client()
    client.force_login(user)
    response = client.post("/admin/agents/agent/add/", {"id": "evil", "role": "self"})
    assert response.status_code == 200
    assert "is a reserved word" in response.content.decode()
    assert not Agent.objects.exists()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"namespaces": [{"pattern": "notes:*", "readers": ["human"], "writers": []}]}, "reserved"),
        ({"namespaces": [{"pattern": "notes:a", "readers": ["self"], "writers": []}]}, "reserved"),
        ({"namespaces": [{"pattern": "notes:*", "readers": ["Sales Team"], "writers": []}]}, "not a role name"),
        ({"fields": [{"namespace": "notes:*", "field": "f", "owners": ["self"]}]}, "reserved"),
        ({"deference": [{"resource": "notes:*", "role": "self", "defers_to": "lead"}]}, "reserved"),
        ({"deference": [{"resource": "notes:*", "role": "sales", "defers_to": "*"}]}, "reserved"),
    ],
)
def test_policy_files_refuse_reserved_words_where_they_mean_nothing(entry, problem):
    with pytest.raises(Invalid, match=problem):
        policies_apply(actor=SYSTEM, document=entry)


def test_policy_files_keep_star_and_self_where_they_mean_something(db):
    policies_apply(actor=SYSTEM, document=TEST_POLICIES)  # agent:private:* with self, code:* with *


def test_coordination_check_names_agents_created_before_the_rule(policies, make_agent):
    make_agent("support-1", "support")
    Agent.objects.create(id="support", role="self")  # as an older version let it be created
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("coordination_check", stdout=out)
    assert "✗ identities are distinct" in out.getvalue() and "support (self)" in out.getvalue()
