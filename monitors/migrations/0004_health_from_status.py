from django.db import migrations


def health_from_status(apps, schema_editor):
    # Monitors created before health existed: their status was their health,
    # and whatever it was had been "announced" (there were no alerts yet).
    Monitor = apps.get_model("monitors", "Monitor")
    for value in ("up", "down"):
        Monitor.objects.filter(status=value).update(health=value, alerted_health=value)


class Migration(migrations.Migration):
    dependencies = [("monitors", "0003_monitor_channels_monitor_consecutive_successes_and_more")]
    operations = [migrations.RunPython(health_from_status, migrations.RunPython.noop)]
