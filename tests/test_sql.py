"""memoryhub.sql: hand-written statements read and write values exactly as the ORM does."""

from datetime import UTC, datetime, timedelta

import pytest

from memoryhub import sql
from memoryhub.locks.models import Lease
from memoryhub.tasks.models import Task
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_rows_become_the_same_instances_the_orm_reads(policies, make_agent):
    agent = make_agent("worker-1", "worker").agent
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    task = Task.objects.create(
        role="worker",
        kind="index",
        payload={"doc": [1, "two", None]},
        status="claimed",
        claimed_by=agent,
        claimed_at=at,
        claim_expires_at=at + timedelta(seconds=60),
        result=None,
        created_by="docs-1",
    )
    lease = Lease.objects.create(
        agent=agent, mode="shared", resources=["a", "b"], ttl_seconds=30, acquired_at=at, expires_at=at
    )
    (read,) = sql.instances(Task, f"SELECT {sql.columns(Task)} FROM tasks_task WHERE id = %s", [task.id])
    assert fields(read) == fields(Task.objects.get(id=task.id))
    ((read_lease, extras),) = sql.instances_and_extras(
        Lease, f"SELECT {sql.columns(Lease, 'l')}, 7, 'x' FROM locks_lease l WHERE l.id = %s", [lease.id]
    )
    assert fields(read_lease) == fields(Lease.objects.get(id=lease.id))
    assert extras == (7, "x")
    assert sql.instances(Task, f"SELECT {sql.columns(Task)} FROM tasks_task WHERE id = %s", [-1]) == []


def test_datetime_parameters_compare_as_in_the_orm(policies, make_agent):
    agent = make_agent("worker-1", "worker").agent
    whole_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # no microseconds: shorter text on SQLite
    Lease.objects.create(
        agent=agent, mode="exclusive", resources=["a"], ttl_seconds=1, acquired_at=whole_second, expires_at=whole_second
    )
    for bound, expected in ((whole_second, 1), (whole_second - timedelta(microseconds=1), 0)):
        orm = Lease.objects.filter(expires_at__lte=bound).count()
        ((raw,),) = sql.fetch("SELECT count(*) FROM locks_lease WHERE expires_at <= %s", [bound])
        assert raw == orm == expected
    assert sql.execute("UPDATE locks_lease SET depth = 2 WHERE expires_at <= %s", [whole_second]) == 1


@pytest.mark.skipif(not on_postgres(), reason="prepared statements are PostgreSQL's")
def test_the_token_lookup_is_prepared_once_per_connection_on_postgresql(policies, make_agent):
    from django.db import connection

    from memoryhub.agents.authentication import agent_for_token

    token = make_agent("worker-1", "worker").token
    for _ in range(3):
        agent, _ = agent_for_token(token)
    assert (agent.id, agent.role, agent.description) == ("worker-1", "worker", "")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%agents_agenttoken%%'")
        assert cursor.fetchone() == (1,)
