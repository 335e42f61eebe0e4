"""The tallies and the PostgreSQL triggers that keep them (see memoryhub/tallies/__init__.py)."""

from django.db import migrations, models

# Statement triggers, with the statement's rows as transition tables: one upsert per statement. A row
# trigger would upsert the same row once per row changed, and each update of a row already updated in
# the transaction walks all its earlier versions: 20,000 rows inserted in one statement took 3.3 s
# with one (52 ms with a statement trigger; 1,000,000: 2.3 s). An update statement pays ~12 us for
# its transition tables (50,000 single-row updates: 1.38 -> 2.00 s), whether or not a count changes
# (a column list, which would spare it, is not allowed with transition tables). search_pending's
# updates change no count.

TRIGGERS = """
CREATE FUNCTION tally_add(tally text, delta bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO tallies_tally AS t (name, shard, n) VALUES (tally, pg_backend_pid(), delta)
    ON CONFLICT (name, shard) DO UPDATE SET n = t.n + EXCLUDED.n
$$;

CREATE FUNCTION tally_memories() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint := 0;
BEGIN
    IF TG_OP <> 'DELETE' THEN delta := delta + (SELECT count(*) FROM new_rows WHERE deleted_at IS NULL); END IF;
    IF TG_OP <> 'INSERT' THEN delta := delta - (SELECT count(*) FROM old_rows WHERE deleted_at IS NULL); END IF;
    IF delta <> 0 THEN PERFORM tally_add('memories.live', delta); END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION tally_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM tally_add('tasks.' || status, count(*)) FROM new_rows GROUP BY status;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM tally_add('tasks.' || status, -count(*)) FROM old_rows GROUP BY status;
    ELSE
        PERFORM tally_add('tasks.' || status, sum(d))
        FROM (SELECT status, 1 AS d FROM new_rows UNION ALL SELECT status, -1 FROM old_rows) AS changed
        GROUP BY status HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION tally_search_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN delta := (SELECT count(*) FROM new_rows); ELSE delta := -(SELECT count(*) FROM old_rows); END IF;
    IF delta <> 0 THEN PERFORM tally_add('search.pending', delta); END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tally_insert AFTER INSERT ON memories_memory REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_memories();
CREATE TRIGGER tally_update AFTER UPDATE ON memories_memory REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_memories();
CREATE TRIGGER tally_delete AFTER DELETE ON memories_memory REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_memories();

CREATE TRIGGER tally_insert AFTER INSERT ON tasks_task REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_tasks();
CREATE TRIGGER tally_update AFTER UPDATE ON tasks_task REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_tasks();
CREATE TRIGGER tally_delete AFTER DELETE ON tasks_task REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_tasks();

CREATE TRIGGER tally_insert AFTER INSERT ON search_pending REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_search_pending();
CREATE TRIGGER tally_delete AFTER DELETE ON search_pending REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_search_pending();

INSERT INTO tallies_tally (name, shard, n)
    SELECT 'memories.live', 0, count(*) FROM memories_memory WHERE deleted_at IS NULL
    UNION ALL SELECT 'tasks.' || status, 0, count(*) FROM tasks_task GROUP BY status
    UNION ALL SELECT 'search.pending', 0, count(*) FROM search_pending;
"""

UNDO = """
DROP TRIGGER IF EXISTS tally_insert ON memories_memory;
DROP TRIGGER IF EXISTS tally_update ON memories_memory;
DROP TRIGGER IF EXISTS tally_delete ON memories_memory;
DROP TRIGGER IF EXISTS tally_insert ON tasks_task;
DROP TRIGGER IF EXISTS tally_update ON tasks_task;
DROP TRIGGER IF EXISTS tally_delete ON tasks_task;
DROP TRIGGER IF EXISTS tally_insert ON search_pending;
DROP TRIGGER IF EXISTS tally_delete ON search_pending;
DROP FUNCTION IF EXISTS tally_memories(), tally_tasks(), tally_search_pending(), tally_add(text, bigint);
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, None)  # no parameters: nothing here is a placeholder

    return run


class Migration(migrations.Migration):
    initial = True
    dependencies = [
        ("memories", "0002_lifecycle"),
        ("tasks", "0002_task_queue_in_claim_order"),
        ("search", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Tally",
            fields=[
                ("pk", models.CompositePrimaryKey("name", "shard", blank=True, editable=False, primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=40)),
                ("shard", models.IntegerField()),
                ("n", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(_on_postgresql(TRIGGERS), _on_postgresql(UNDO)),
    ]
