"""SCENARIO 4 for real: 12 agent threads claim and complete 100 tasks against the real database.
Every task is claimed once and completed once, by the agent that claimed it."""

from collections import Counter

import pytest
from rest_framework.test import APIClient

from memoryhub.actors import SYSTEM
from memoryhub.events.models import Event
from memoryhub.tasks.models import Task
from memoryhub.tasks.services import task_create

from ..locks.conftest import run_threads
from .conftest import claim, complete

AGENTS = 12
TASKS = 100


@pytest.mark.django_db(transaction=True)
def test_many_agents_claim_every_task_exactly_once(policies, make_agent):
    for index in range(TASKS):
        task_create(actor=SYSTEM, role="worker", kind="index", payload={"n": index})
    agents = [make_agent(f"worker-{i}", "worker") for i in range(AGENTS)]
    done: dict[int, list[int]] = {i: [] for i in range(AGENTS)}

    def work(index: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {agents[index].token}")
        while True:
            response = claim(client, ttl=120)
            if response.status_code == 204:
                return
            assert response.status_code == 200, response.content
            task = response.json()
            assert task["claimed_by"] == agents[index].id
            finished = complete(client, task["id"], {"by": agents[index].id})
            assert finished.status_code == 200, finished.content
            done[index].append(task["id"])

    assert run_threads(work, AGENTS) == []

    completed = [task_id for ids in done.values() for task_id in ids]
    assert sorted(completed) == sorted(Task.objects.values_list("id", flat=True))
    assert len(completed) == len(set(completed)) == TASKS
    assert Task.objects.filter(status="completed", attempts=1).count() == TASKS
    claims = Counter(Event.objects.filter(type="task.claimed").values_list("resource", flat=True))
    assert len(claims) == TASKS and set(claims.values()) == {1}
    assert Event.objects.filter(type="task.completed").count() == TASKS
    for task in Task.objects.all():
        assert task.result == {"by": task.completed_by}
