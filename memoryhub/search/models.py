"""What search keeps beside memories: one embedding per memory and embedder, and the memories still
to embed. The lexical index is not here: it is the database's own (a generated tsvector column on
PostgreSQL, an FTS5 table on SQLite), kept in step by the database in the write's transaction (see
migrations/0001_initial.py)."""

from django.db import models


class Embedding(models.Model):
    """The vector of one memory's text at `version`, by one embedder. On PostgreSQL with pgvector the
    vector is also in the `vec` column (added by the migration where the extension exists), which
    the HNSW index is built on; elsewhere `data` (float32, little-endian) is what search reads."""

    memory = models.ForeignKey("memories.Memory", on_delete=models.CASCADE, related_name="+")
    embedder = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    digest = models.CharField(
        max_length=40, help_text="sha1 of the embedded text: an unchanged text is not re-embedded"
    )
    dimensions = models.PositiveSmallIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["memory", "embedder"], name="uniq_embedding_memory_embedder")]
        indexes = [models.Index(fields=["embedder", "memory"], name="embedding_embedder_memory")]


class Pending(models.Model):
    """A memory whose `version` is not embedded yet. Rows are put here by database triggers on
    memories_memory in the write's own transaction (so none is lost to a crash after commit) and
    removed by the embedding worker once that version is stored. The backlog is their count."""

    memory = models.OneToOneField("memories.Memory", on_delete=models.CASCADE, primary_key=True, related_name="+")
    version = models.PositiveIntegerField()


class EmbedderState(models.Model):
    """An embedder whose backlog is fully in search_pending: its row is written, in one transaction
    with the pending rows, when every live memory without its vector has been noted. Until then
    (a new embedder just configured) semantic results are marked incomplete."""

    name = models.CharField(max_length=100, primary_key=True)
    reconciled_at = models.DateTimeField()
