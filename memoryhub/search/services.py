"""Keeping embeddings in step with memories, off the request path.

A write notes its memory in search_pending (a database trigger, in the write's transaction); the
worker (memoryhub.search.tasks) calls `embeddings_update` until nothing is pending. The model runs
outside any transaction; storing a batch is one short transaction that removes a pending row only if
no newer version was noted meanwhile (that one is embedded on the next round).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from memoryhub.memories.models import Memory
from memoryhub.tallies import selectors as tallies

from . import schema
from .embedders import Embedder, Unavailable, current_embedder, memory_text
from .models import EmbedderState, Embedding, Pending

log = logging.getLogger(__name__)
BATCH = 32

_index_lock = threading.Lock()
_indexed: set[tuple[str, str, int]] = set()


def vector_index_ensure(*, name: str, dimensions: int) -> None:
    """The partial HNSW index of one embedder's vectors (pgvector indexes need a fixed dimension,
    and each embedder has its own), created once when its first vectors are stored or searched."""
    if not schema.has_vector_column(connection):
        return
    marker = (str(connection.settings_dict.get("NAME")), name, dimensions)
    with _index_lock:
        if marker in _indexed:
            return
        index = "search_embedding_hnsw_" + hashlib.sha1(f"{name}/{dimensions}".encode()).hexdigest()[:12]
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                # PostgreSQL refuses CREATE INDEX on a table while this transaction has deferred
                # foreign-key checks pending: run them now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {index} ON search_embedding "
                f"USING hnsw ((vec::vector({int(dimensions)})) vector_cosine_ops) WHERE embedder = '{name}'"
            )
        if not connection.in_atomic_block:  # inside a transaction it is not there until that commits
            _indexed.add(marker)


def _store(embedder: Embedder, rows: list[dict[str, Any]]) -> None:
    vector_column = schema.has_vector_column(connection)
    columns = "memory_id, embedder, version, digest, dimensions, data" + (", vec" if vector_column else "")
    values = "%s, %s, %s, %s, %s, %s" + (", %s::vector" if vector_column else "")
    updates = (
        "version = excluded.version, digest = excluded.digest, dimensions = excluded.dimensions, data = excluded.data"
    )
    if vector_column:
        updates += ", vec = excluded.vec"
    params = []
    for row in rows:
        vector = row["vector"]
        item = [
            row["memory_id"],
            embedder.name,
            row["version"],
            row["digest"],
            len(vector),
            vector.astype("<f4").tobytes(),
        ]
        if vector_column:
            item.append("[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]")
        params.append(item)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO search_embedding ({columns}) VALUES ({values}) "
            f"ON CONFLICT (memory_id, embedder) DO UPDATE SET {updates}",
            params,
        )


def embeddings_update(*, batch: int = BATCH) -> int:
    """Embed one batch of pending memory versions. Returns how many pending rows it settled (0: none
    left). Raises Unavailable when the embedder cannot run (the rows stay pending: the backlog)."""
    embedder = current_embedder()
    pending = list(Pending.objects.select_related("memory").order_by("memory_id")[:batch])
    if not pending:
        embeddings_prune(name=embedder.name)
        return 0
    now = timezone.now()
    current = {
        row.memory_id: row.digest
        for row in Embedding.objects.filter(embedder=embedder.name, memory_id__in=[p.memory_id for p in pending])
    }
    to_embed: list[dict[str, Any]] = []
    unchanged: list[tuple[int, int]] = []
    gone: list[int] = []
    settled: list[tuple[int, int]] = []  # (memory id, version read): pending rows to remove
    for row in pending:
        memory = row.memory
        settled.append((memory.id, memory.version))
        if memory.deleted_at is not None or (memory.expires_at and memory.expires_at <= now):
            gone.append(memory.id)
            continue
        text = memory_text(memory.key, memory.content)
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
        if current.get(memory.id) == digest:
            unchanged.append((memory.id, memory.version))
        else:
            to_embed.append({"memory_id": memory.id, "version": memory.version, "digest": digest, "text": text})
    if to_embed:
        # The model runs here, outside any transaction: nothing is locked while it thinks.
        vectors = embedder.embed([item["text"] for item in to_embed])
        for item, vector in zip(to_embed, vectors, strict=True):
            item["vector"] = vector
        vector_index_ensure(name=embedder.name, dimensions=len(vectors[0]))
    with transaction.atomic():
        if to_embed:
            # A memory removed since it was read (pruned, or its test's data torn down) has no row to
            # hang a vector on: lock the ones still there, so none goes while they are stored.
            present = set(
                Memory.objects.select_for_update()
                .filter(id__in=[item["memory_id"] for item in to_embed])
                .values_list("id", flat=True)
            )
            to_embed = [item for item in to_embed if item["memory_id"] in present]
        if to_embed:
            _store(embedder, to_embed)
        for memory_id, version in unchanged:
            Embedding.objects.filter(memory_id=memory_id, embedder=embedder.name).update(version=version)
        if gone:
            Embedding.objects.filter(memory_id__in=gone).delete()
        for memory_id, version in settled:
            # A write after our read noted a newer version: that row stays for the next round.
            Pending.objects.filter(memory_id=memory_id, version__lte=version).delete()
    return len(settled)


def embeddings_reconcile() -> int:
    """For the current embedder, note every live memory whose current version has no vector of it
    (a new or changed embedder re-embeds everything, in the background), and record that its
    backlog is now complete; once nothing is pending, drop other embedders' vectors. Returns how
    many memories it noted."""
    try:
        name = current_embedder().name
    except Unavailable:
        return 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO search_pending (memory_id, version) SELECT m.id, m.version FROM memories_memory m "
                "WHERE m.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM search_embedding e "
                "WHERE e.memory_id = m.id AND e.embedder = %s AND e.version = m.version) "
                "ON CONFLICT (memory_id) DO NOTHING",
                [name],
            )
            noted = cursor.rowcount
        EmbedderState.objects.update_or_create(name=name, defaults={"reconciled_at": timezone.now()})
    return max(noted, 0)


def embeddings_prune(*, name: str) -> int:
    """Once nothing is pending, the vectors of other (earlier) embedders are dead weight."""
    if Pending.objects.exists():
        return 0
    deleted, _ = Embedding.objects.exclude(embedder=name).delete()
    EmbedderState.objects.exclude(name=name).delete()
    return deleted


def embedder_reconciled(name: str) -> bool:
    return EmbedderState.objects.filter(name=name).exists()


def embedding_backlog() -> int:
    """Memory versions not embedded yet (what /readyz and /metrics report)."""
    return tallies.tally("search.pending") if tallies.kept() else Pending.objects.count()
