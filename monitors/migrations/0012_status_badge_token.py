"""Each monitor's badge token (issue 14): added empty, filled one random
token per existing monitor, then made unique and required."""

from django.db import migrations, models

import monitors.models


def fill_tokens(apps, schema_editor):
    Monitor = apps.get_model("monitors", "Monitor")
    pending = list(Monitor.objects.filter(badge_token__isnull=True).only("pk"))
    for monitor in pending:
        monitor.badge_token = monitors.models.new_badge_token()
    Monitor.objects.bulk_update(pending, ["badge_token"], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [("monitors", "0011_teams_owned_by_teams")]

    operations = [
        migrations.AddField(
            model_name="monitor", name="badge_token", field=models.CharField(max_length=64, null=True, editable=False),
        ),
        migrations.RunPython(fill_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="monitor", name="badge_token",
            field=models.CharField(default=monitors.models.new_badge_token, editable=False, max_length=64, unique=True),
        ),
    ]
