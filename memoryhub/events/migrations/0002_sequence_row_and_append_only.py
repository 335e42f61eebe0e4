from django.db import migrations


def create_sequence_row(apps, schema_editor):
    apps.get_model("events", "EventSequence").objects.get_or_create(id=1, defaults={"last": 0})


def guard_sql(vendor: str, forward: bool) -> list[str]:
    """The log is append-only in the database too: UPDATE (and on PostgreSQL DELETE) of an event fails.
    TRUNCATE, used by test flushes, is not a row operation and still works."""
    if vendor == "postgresql":
        if not forward:
            return [
                "DROP TRIGGER IF EXISTS events_event_append_only ON events_event",
                "DROP FUNCTION IF EXISTS events_event_refuse_change()",
            ]
        return [
            """CREATE OR REPLACE FUNCTION events_event_refuse_change() RETURNS trigger AS $$
               BEGIN RAISE EXCEPTION 'events are append-only'; END; $$ LANGUAGE plpgsql""",
            """CREATE TRIGGER events_event_append_only BEFORE UPDATE OR DELETE ON events_event
               FOR EACH ROW EXECUTE FUNCTION events_event_refuse_change()""",
        ]
    if vendor == "sqlite":
        if not forward:
            return ["DROP TRIGGER IF EXISTS events_event_no_update"]
        return [
            """CREATE TRIGGER events_event_no_update BEFORE UPDATE ON events_event
               BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"""
        ]
    return []


def add_guards(apps, schema_editor):
    for statement in guard_sql(schema_editor.connection.vendor, True):
        schema_editor.execute(statement)


def remove_guards(apps, schema_editor):
    for statement in guard_sql(schema_editor.connection.vendor, False):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]

    operations = [
        migrations.RunPython(create_sequence_row, migrations.RunPython.noop),
        migrations.RunPython(add_guards, remove_guards),
    ]
