"""Leases keep the digest of their holder token, the proof a re-entry presents (issue 12 L9). Leases
granted before have none, and so cannot be re-entered: their holders acquire anew once they end."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("locks", "0003_fencing_token_is_lease_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="lease",
            name="holder_digest",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
