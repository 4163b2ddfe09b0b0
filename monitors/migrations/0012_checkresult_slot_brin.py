"""A BRIN index on the results' slot (PostgreSQL, where the table is
partitioned and keyed by monitor, region, slot): the admin's newest results
of the last hour or day read the few block ranges written then instead of
every row of the day. A few KB a day, since rows are written in slot order."""

from django.db import migrations


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE INDEX IF NOT EXISTS checkresult_slot_brin ON monitors_checkresult "
                              "USING brin (scheduled_at)")


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS checkresult_slot_brin")


class Migration(migrations.Migration):

    dependencies = [
        ("monitors", "0011_monitor_summaries"),
    ]

    operations = [migrations.RunPython(create, drop)]
