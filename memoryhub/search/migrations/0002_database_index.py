from django.db import migrations


def ensure(apps, schema_editor):
    from memoryhub.search.schema import ensure

    ensure(schema_editor.connection)


class Migration(migrations.Migration):
    """The lexical index, the pending-embedding triggers and (where the extension exists) pgvector:
    see memoryhub/search/schema.py. Reversing leaves them (they are harmless without this app)."""

    dependencies = [("search", "0001_initial"), ("memories", "0001_initial")]

    operations = [migrations.RunPython(ensure, migrations.RunPython.noop, elidable=False)]
