"""Fencing tokens are now lease ids (they were event seqs). Tokens must keep rising per resource, so the
lease id sequence moves past every token already issued or used."""

from django.db import migrations

HIGHEST = (
    "SELECT MAX(t) FROM (SELECT COALESCE(MAX(fencing_token), 0) AS t FROM locks_lease"
    " UNION ALL SELECT COALESCE(MAX(id), 0) FROM locks_lease"
    " UNION ALL SELECT COALESCE(MAX(fencing_token), 0) FROM memories_memory) AS tokens"
)


def advance_lease_ids(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(HIGHEST)
        (highest,) = cursor.fetchone()
        if not highest:
            return
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence('locks_lease', 'id'), %s)", [highest])
        elif connection.vendor == "sqlite":
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = 'locks_lease'")
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('locks_lease', %s)", [highest])


class Migration(migrations.Migration):
    dependencies = [
        ("locks", "0002_lock_wait"),
        ("memories", "0001_initial"),
    ]

    operations = [migrations.RunPython(advance_lease_ids, migrations.RunPython.noop)]
