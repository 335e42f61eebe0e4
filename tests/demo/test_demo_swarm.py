"""`manage.py demo_swarm` against a real running hub, after `setup_demo`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from contexts.models import ContextEntry
from memoryhub.agents.models import AgentToken
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory
from memoryhub.tasks.models import Task
from tests.servers import free_port, server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


@pytest.fixture
def sweeping_hub(transactional_db):
    """A hub whose sweepers run every second, as the embedded default's do every 5 s: the lifecycle
    scenarios wait for them (stopped before the test's data is flushed)."""
    env = {"MEMORYHUB_INPROCESS_SWEEPER": "true", "MEMORYHUB_SWEEP_INTERVAL": "1", "MEMORYHUB_WS_CATCHUP_SECONDS": "1"}
    with server(env=env) as url:
        yield url


def test_one_round_of_every_scenario_ends_as_it_should(settings, sweeping_hub):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("setup_demo", admin_password="demo-password", stdout=StringIO())
    out = StringIO()
    call_command("demo_swarm", url=sweeping_hub, rounds=1, pace=0, stdout=out)
    log = out.getvalue()

    assert "all 8 scenario runs ended as they should" in log, log
    assert "✗ write refused (412)" in log  # the optimistic race really raced
    assert "defer to support" in log
    assert "refused (stale_fencing_token)" in log
    assert Memory.objects.get(namespace="counter:stock", key="sku-42").content["n"] == 1
    assert Memory.objects.get(namespace="inventory:sku-1", key="count").content == {"units": 1}
    renders = Task.objects.filter(kind="render")
    assert renders.count() == 5 and set(renders.values_list("status", flat=True)) == {"completed"}
    completed = Event.objects.filter(type="task.completed", resource__in=[f"task:{t.id}" for t in renders])
    assert completed.count() == 5  # each once, by one agent
    assert Event.objects.filter(type="conflict.rejected").exists()
    # The stale fact: announced once to support as a `stale` entry, verified by support-1, no new version.
    [fact] = Memory.objects.filter(namespace="facts:acme")
    assert fact.version == 1 and fact.verified_by == "support-1"
    assert Event.objects.filter(type="memory.stale", resource=fact.resource).exists()
    assert Event.objects.filter(type="memory.verified", resource=fact.resource, actor_id="support-1").count() == 1
    assert ContextEntry.objects.filter(context_type="stale", to_role="support").exists()
    # The episodes: summarized by scribe-1 through a task, archived once each, the summary derived from them.
    episodes = Memory.objects.filter(namespace__startswith="log:orders:", kind="episodic")
    assert episodes.count() == 4 and not episodes.filter(archived_at=None).exists()
    summaries = Memory.objects.filter(namespace__startswith="log:orders:", kind="semantic")
    assert sorted(s for summary in summaries for s in summary.derived_from) == sorted(e.resource for e in episodes)
    assert set(Task.objects.filter(kind="memory.summarize").values_list("status", "claimed_by")) == {
        ("completed", "scribe-1")
    }
    assert Event.objects.filter(type="memory.archived").count() == 4
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
