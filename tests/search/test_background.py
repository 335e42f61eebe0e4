"""Embeddings are computed after commit, off the request path, by the in-process worker (embedded
default) or a real Celery worker (with Redis); a changed embedder re-embeds in the background while
search keeps answering."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from memoryhub.actors import SYSTEM, Actor
from memoryhub.memories.services import memory_put
from memoryhub.search.embedders import LocalMiniLM, OpenAICompatible
from memoryhub.search.models import Embedding, Pending
from memoryhub.search.selectors import memories_search
from memoryhub.search.services import embedding_backlog

from .conftest import wait_embedded

HUMAN = Actor(kind="human", id="alice", role="human")


@pytest.mark.django_db(transaction=True)
def test_a_write_returns_before_its_embedding_and_is_found_once_it_lands(policies, make_agent, embedding_worker):
    writer = make_agent("coder-1", "code-review")
    with embedding_worker.held():  # no embedding can be computed in here
        response = writer.client.put(
            "/api/v1/memories/code:notes/pelican/",
            {"content": {"text": "The pelican migrates south in winter"}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k1",
        )
        assert response.status_code in (200, 201), response.content
        # The write committed and answered while its embedding could not have been computed.
        assert Pending.objects.filter(memory__key="pelican").exists()
        assert embedding_backlog() == 1
        page = memories_search(actor=HUMAN, q="pelican", mode="lexical")
        assert [r["key"] for r in page.results] == ["pelican"]
    wait_embedded()
    page = memories_search(actor=HUMAN, q="birds flying to warmer places", mode="semantic")
    assert [r["key"] for r in page.results] == ["pelican"] and page.incomplete is False
    metrics = writer.client.get("/metrics").content.decode()
    assert "memoryhub_search_embedding_backlog 0.0" in metrics
    assert "backlog 0" in writer.client.get("/readyz").json()["checks"]["embeddings"]


class _EmbeddingsHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/embeddings serving the real local model (what TEI or Ollama do)."""

    model = None
    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        vectors = type(self).model.embed(body["input"])
        payload = {
            "object": "list",
            "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def embeddings_endpoint():
    _EmbeddingsHandler.model = LocalMiniLM()
    _EmbeddingsHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_openai_compatible_embedder_speaks_the_protocol(embeddings_endpoint):
    embedder = OpenAICompatible(url=embeddings_endpoint, model="all-minilm", api_key="sk-test")
    vectors = embedder.embed(["The weather is lovely today.", "It's so sunny outside!"])
    assert vectors.shape == (2, 384)
    assert round(float(vectors[0] @ vectors[1]), 3) == 0.666  # sentence-transformers' published figure
    request = _EmbeddingsHandler.requests[0]
    assert request["path"] == "/v1/embeddings" and request["auth"] == "Bearer sk-test"
    assert request["model"] == "all-minilm" and len(request["input"]) == 2


@pytest.mark.django_db(transaction=True)
def test_changing_the_embedder_reembeds_in_the_background(policies, embeddings_endpoint, embedding_worker):
    for i, text in enumerate(["walrus on the ice", "deploy the payment service", "quarterly sales review"]):
        memory_put(actor=SYSTEM, namespace="code:notes", key=f"n{i}", content={"text": text})
    wait_embedded()
    assert set(Embedding.objects.values_list("embedder", flat=True)) == {"minilm-l6-v2"}

    embedding_worker.restart(
        MEMORYHUB_EMBEDDER="openai", MEMORYHUB_EMBEDDER_URL=embeddings_endpoint, MEMORYHUB_EMBEDDER_MODEL="all-minilm"
    )
    # The first search under the new embedder answers at once, says it is incomplete, and wakes the worker.
    page = memories_search(actor=HUMAN, q="arctic animals", mode="hybrid")
    assert page.incomplete is True
    wait_embedded()
    page = memories_search(actor=HUMAN, q="arctic animals", mode="semantic")
    assert page.incomplete is False and page.results[0]["key"] == "n0"
    assert set(Embedding.objects.values_list("embedder", flat=True)) == {"openai:all-minilm"}
    assert Embedding.objects.count() == 3
