"""`manage.py demo_swarm` against a real running hub, after `setup_demo`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from memoryhub.agents.models import AgentToken
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory
from memoryhub.tasks.models import Task
from tests.servers import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def test_one_round_of_every_scenario_ends_as_it_should(settings, hub_server):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("setup_demo", admin_password="demo-password", stdout=StringIO())
    out = StringIO()
    call_command("demo_swarm", url=hub_server, rounds=1, pace=0, stdout=out)
    log = out.getvalue()

    assert "all 6 scenario runs ended as they should" in log, log
    assert "✗ write refused (412)" in log  # the optimistic race really raced
    assert "defer to support" in log
    assert "refused (stale_fencing_token)" in log
    assert Memory.objects.get(namespace="counter:stock", key="sku-42").content["n"] == 1
    assert Memory.objects.get(namespace="inventory:sku-1", key="count").content == {"units": 1}
    renders = Task.objects.filter(kind="render")
    assert renders.count() == 5 and set(renders.values_list("status", flat=True)) == {"completed"}
    assert Event.objects.filter(type="task.completed").count() == 5  # each once, by one agent
    assert Event.objects.filter(type="conflict.rejected").exists()
    # The demo's tokens are revoked when it ends; setup_demo's keep working.
    assert not AgentToken.objects.filter(label="demo_swarm", revoked_at=None).exists()
    assert AgentToken.objects.filter(agent_id="sales-1", revoked_at=None).exists()


def test_without_setup_demo_it_says_what_to_run(policies):
    with pytest.raises(CommandError, match="setup_demo"):
        call_command("demo_swarm", url="http://127.0.0.1:1", rounds=1, pace=0, stdout=StringIO())


def test_without_a_running_hub_it_says_so(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("setup_demo", admin_password="demo-password", stdout=StringIO())
    with pytest.raises(CommandError, match="no hub answers"):
        call_command("demo_swarm", url=f"http://127.0.0.1:{free_port()}", rounds=1, pace=0, stdout=StringIO())
