"""The statement written out in SQL here, and why."""

# Folding deletes the rows of backends no longer connected (pg_stat_activity) and adds them into
# shard 0, in one statement. The ORM cannot say DELETE ... RETURNING inside an upsert. SKIP LOCKED:
# a row a new backend (reusing a pid) is updating right now is left for the next fold, so folding
# never waits on a writer; shard-0 rows are taken in name order, so two folds cannot deadlock.
FOLD = """
WITH gone AS (
    DELETE FROM tallies_tally WHERE (name, shard) IN (
        SELECT name, shard FROM tallies_tally t
        WHERE shard <> 0 AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = t.shard)
        FOR UPDATE SKIP LOCKED
    )
    RETURNING name, n
)
INSERT INTO tallies_tally AS t (name, shard, n)
SELECT name, 0, sum(n) FROM gone GROUP BY name ORDER BY name
ON CONFLICT (name, shard) DO UPDATE SET n = t.n + EXCLUDED.n
"""

# Every tally counted afresh, in shard 0 (the migration's first count, again): for a store loaded with
# the triggers disabled (a bulk load, `pg_restore --disable-triggers`). Run it with no writers about.
RECOUNT = """
INSERT INTO tallies_tally (name, shard, n)
    SELECT 'memories.live', 0, count(*) FROM memories_memory WHERE deleted_at IS NULL
    UNION ALL SELECT 'tasks.' || status, 0, count(*) FROM tasks_task GROUP BY status
    UNION ALL SELECT 'search.pending', 0, count(*) FROM search_pending
"""
