"""The database's own search structures on memories_memory, kept in step by the database itself.

PostgreSQL: a generated `search_tsv` column (the words of the memory's key and of every string and
number in its content; JSON keys' names are not words) with a GIN index, a `varchar_pattern_ops`
index on `namespace` (for readable_q's prefix LIKEs), and where the pgvector extension can be created
a `vec` column on search_embedding. SQLite: an FTS5 table `search_fts` filled by triggers.
Both: triggers that note each new memory version in search_pending for the embedding worker.

All of it happens inside the write's own transaction, so the write path has no search code and no
separate indexer can fall behind. `ensure` is idempotent; it runs in the migration and after every
`migrate`, because SQLite rebuilds a table (dropping its triggers) when a later migration alters it.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from django.db import transaction

log = logging.getLogger(__name__)

TS_CONFIG = "english"

# Text of a memory for the lexical index: the key (separators as spaces) weighted above the values.
_PG_TSV = f"""
    setweight(to_tsvector('{TS_CONFIG}'::regconfig, translate(key, '_.:@-', '     ')), 'C')
    || setweight(jsonb_to_tsvector('{TS_CONFIG}'::regconfig, coalesce(content, 'null'::jsonb), '["string", "numeric"]'), 'D')
"""

_PG = [
    f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                       WHERE table_name = 'memories_memory' AND column_name = 'search_tsv') THEN
            ALTER TABLE memories_memory ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS ({_PG_TSV}) STORED;
        END IF;
    END $$""",
    "CREATE INDEX IF NOT EXISTS memories_memory_search_tsv ON memories_memory USING gin (search_tsv)",
    "CREATE INDEX IF NOT EXISTS memories_memory_namespace_like ON memories_memory (namespace varchar_pattern_ops)",
    # Once per statement, over its transition tables, not once per row: a row trigger's INSERT is a
    # statement of its own, and each fired search_pending's tally trigger (memoryhub/tallies), which
    # updates one row; a million-row INSERT made a million versions of that row in one transaction,
    # each found by walking the versions before it (it had not finished after 38 minutes).
    """CREATE OR REPLACE FUNCTION search_pending_note_rows() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO search_pending (memory_id, version) SELECT id, version FROM new_rows
            ON CONFLICT (memory_id) DO UPDATE SET version = EXCLUDED.version;
        ELSE
            INSERT INTO search_pending (memory_id, version)
            SELECT n.id, n.version FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE o.version IS DISTINCT FROM n.version OR o.content IS DISTINCT FROM n.content
            ON CONFLICT (memory_id) DO UPDATE SET version = EXCLUDED.version;
        END IF;
        RETURN NULL;
    END $$""",
    # The row triggers (and their function) of earlier versions go first: a trigger cannot be replaced
    # by one of another level.
    "DROP TRIGGER IF EXISTS search_pending_insert ON memories_memory",
    "DROP TRIGGER IF EXISTS search_pending_update ON memories_memory",
    "DROP FUNCTION IF EXISTS search_pending_note()",
    """CREATE TRIGGER search_pending_insert AFTER INSERT ON memories_memory
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_pending_note_rows()""",
    """CREATE TRIGGER search_pending_update AFTER UPDATE ON memories_memory
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION search_pending_note_rows()""",
]

# Strings and numbers anywhere in the content, not the names of its keys.
_SQLITE_BODY = (
    "(SELECT group_concat(value, ' ') FROM json_tree({row}.content) WHERE type IN ('text', 'integer', 'real'))"
)
_SQLITE_KEY = "replace(replace(replace(replace({row}.key, '_', ' '), '.', ' '), ':', ' '), '-', ' ')"
_SQLITE_FTS_ROW = f"INSERT INTO search_fts (rowid, key, body) VALUES (new.id, {_SQLITE_KEY.format(row='new')}, {_SQLITE_BODY.format(row='new')});"
_SQLITE_PENDING = (
    "INSERT INTO search_pending (memory_id, version) VALUES (new.id, new.version) "
    "ON CONFLICT (memory_id) DO UPDATE SET version = excluded.version;"
)
_SQLITE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(key, body, tokenize = 'porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER IF NOT EXISTS search_memory_insert AFTER INSERT ON memories_memory BEGIN {_SQLITE_FTS_ROW} {_SQLITE_PENDING} END",
    f"""CREATE TRIGGER IF NOT EXISTS search_memory_update AFTER UPDATE ON memories_memory
        WHEN old.version IS NOT new.version OR old.content IS NOT new.content OR old.key IS NOT new.key
        BEGIN DELETE FROM search_fts WHERE rowid = old.id; {_SQLITE_FTS_ROW} {_SQLITE_PENDING} END""",
    "CREATE TRIGGER IF NOT EXISTS search_memory_delete AFTER DELETE ON memories_memory BEGIN DELETE FROM search_fts WHERE rowid = old.id; END",
]


def _sqlite_backfill(cursor) -> None:
    """Rows written while the triggers were missing (first install, or a table rebuilt by a migration)."""
    cursor.execute(
        "INSERT INTO search_fts (rowid, key, body) "
        f"SELECT m.id, {_SQLITE_KEY.format(row='m')}, {_SQLITE_BODY.format(row='m')} FROM memories_memory m "
        "WHERE m.id NOT IN (SELECT rowid FROM search_fts)"
    )


def _pgvector(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            return
        try:
            with transaction.atomic(using=connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception as exc:  # e.g. not a superuser: exact cosine then, as without the extension
            log.warning("pgvector is installed but could not be enabled (%s): semantic search uses exact cosine", exc)
            return
        cursor.execute("ALTER TABLE search_embedding ADD COLUMN IF NOT EXISTS vec vector")


def ensure(connection) -> None:
    """Create whatever is missing (idempotent)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with transaction.atomic(using=connection.alias):  # writers never meet a dropped trigger
                for statement in _PG:
                    cursor.execute(statement)
        elif connection.vendor == "sqlite":
            for statement in _SQLITE:
                cursor.execute(statement)
            _sqlite_backfill(cursor)
            cursor.execute(
                "INSERT OR IGNORE INTO search_pending (memory_id, version) SELECT id, version FROM memories_memory "
                "WHERE deleted_at IS NULL AND id NOT IN (SELECT memory_id FROM search_embedding)"
            )
    if connection.vendor == "postgresql":
        _pgvector(connection)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO search_pending (memory_id, version) SELECT id, version FROM memories_memory m "
                "WHERE deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM search_embedding e WHERE e.memory_id = m.id) "
                "ON CONFLICT DO NOTHING"
            )
    _has_vector_column.cache_clear()


@lru_cache(maxsize=8)
def _has_vector_column(alias: str, name: str) -> bool:
    from django.db import connections

    connection = connections[alias]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'search_embedding' AND column_name = 'vec'"
        )
        return cursor.fetchone() is not None


def has_vector_column(connection) -> bool:
    """Is pgvector on (so the HNSW path is used) for this database?"""
    return _has_vector_column(connection.alias, str(connection.settings_dict.get("NAME")))
