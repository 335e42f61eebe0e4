from django.db import migrations, models


def copy_requires_ack(apps, schema_editor):
    Receipt = apps.get_model("contexts", "Receipt")
    Receipt.objects.filter(entry__requires_ack=True).update(requires_ack=True)


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_agent_names_end_at_z"),
        ("contexts", "0002_receipt_live_indexes"),
    ]

    operations = [
        migrations.AddField(model_name="receipt", name="requires_ack", field=models.BooleanField(default=False)),
        migrations.RunPython(copy_requires_ack, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="receipt",
            index=models.Index(
                condition=models.Q(("acked_at", None), ("entry_expired", False), ("requires_ack", True)),
                fields=["agent"],
                name="receipt_awaiting_ack",
            ),
        ),
    ]
