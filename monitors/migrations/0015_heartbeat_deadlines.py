"""Heartbeats' deadlines move to a narrow table of their own, kept by
triggers on the monitor table (see HeartbeatDeadline): the late sweep's
index is there, and a steady ping's update of the monitor becomes HOT."""

import django.db.models.deletion
from django.db import migrations, models

# Which monitors have a row, and its value: one rule for both dialects.
HAS_DEADLINE = "NEW.kind = 'heartbeat' AND NOT NEW.paused AND NEW.next_ping_due_at IS NOT NULL"
CHANGED = ("OLD.next_ping_due_at IS DISTINCT FROM NEW.next_ping_due_at OR OLD.paused IS DISTINCT FROM NEW.paused"
           " OR OLD.kind IS DISTINCT FROM NEW.kind")

POSTGRESQL = [f"""
CREATE FUNCTION monitors_heartbeat_deadline_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' AND {HAS_DEADLINE} THEN
        INSERT INTO monitors_heartbeatdeadline (monitor_id, due_at) VALUES (NEW.id, NEW.next_ping_due_at)
            ON CONFLICT (monitor_id) DO UPDATE SET due_at = EXCLUDED.due_at;
    ELSIF TG_OP <> 'INSERT' THEN
        DELETE FROM monitors_heartbeatdeadline WHERE monitor_id = OLD.id;
    END IF;
    RETURN NULL;
END $$
""", """
CREATE TRIGGER monitors_heartbeat_deadline_insert AFTER INSERT ON monitors_monitor
    FOR EACH ROW WHEN (NEW.kind = 'heartbeat') EXECUTE FUNCTION monitors_heartbeat_deadline_sync()
""", f"""
CREATE TRIGGER monitors_heartbeat_deadline_update AFTER UPDATE OF next_ping_due_at, paused, kind
    ON monitors_monitor FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION monitors_heartbeat_deadline_sync()
""", """
CREATE TRIGGER monitors_heartbeat_deadline_delete AFTER DELETE ON monitors_monitor
    FOR EACH ROW WHEN (OLD.kind = 'heartbeat') EXECUTE FUNCTION monitors_heartbeat_deadline_sync()
"""]
POSTGRESQL_REVERSE = ["DROP TRIGGER monitors_heartbeat_deadline_insert ON monitors_monitor",
                      "DROP TRIGGER monitors_heartbeat_deadline_update ON monitors_monitor",
                      "DROP TRIGGER monitors_heartbeat_deadline_delete ON monitors_monitor",
                      "DROP FUNCTION monitors_heartbeat_deadline_sync()"]

_SQLITE_SYNC = f"""
    DELETE FROM monitors_heartbeatdeadline WHERE monitor_id = NEW.id;
    INSERT INTO monitors_heartbeatdeadline (monitor_id, due_at) SELECT NEW.id, NEW.next_ping_due_at
        WHERE {HAS_DEADLINE};
"""
SQLITE = [f"""
CREATE TRIGGER monitors_heartbeat_deadline_insert AFTER INSERT ON monitors_monitor
    WHEN NEW.kind = 'heartbeat' BEGIN {_SQLITE_SYNC} END
""", f"""
CREATE TRIGGER monitors_heartbeat_deadline_update AFTER UPDATE OF next_ping_due_at, paused, kind
    ON monitors_monitor WHEN {CHANGED.replace(" IS DISTINCT FROM ", " IS NOT ")} BEGIN {_SQLITE_SYNC} END
""", """
CREATE TRIGGER monitors_heartbeat_deadline_delete AFTER DELETE ON monitors_monitor
    WHEN OLD.kind = 'heartbeat' BEGIN DELETE FROM monitors_heartbeatdeadline WHERE monitor_id = OLD.id; END
"""]
SQLITE_REVERSE = ["DROP TRIGGER monitors_heartbeat_deadline_insert", "DROP TRIGGER monitors_heartbeat_deadline_update",
                  "DROP TRIGGER monitors_heartbeat_deadline_delete"]

BACKFILL = ("INSERT INTO monitors_heartbeatdeadline (monitor_id, due_at) SELECT id, next_ping_due_at FROM monitors_monitor"
            " WHERE kind = 'heartbeat' AND NOT paused AND next_ping_due_at IS NOT NULL")


def _run(statements: dict):
    def run(apps, schema_editor):
        for statement in statements[schema_editor.connection.vendor]:
            schema_editor.execute(statement)
    return run


class Migration(migrations.Migration):

    dependencies = [
        ('monitors', '0014_merge_config_slugs'),
    ]

    operations = [
        migrations.CreateModel(
            name='HeartbeatDeadline',
            fields=[
                ('monitor', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='monitors.monitor')),
                ('due_at', models.DateTimeField()),
            ],
        ),
        migrations.AddIndex(
            model_name='heartbeatdeadline',
            index=models.Index(fields=['due_at'], name='heartbeat_due_idx'),
        ),
        migrations.RunPython(_run({"postgresql": POSTGRESQL + [BACKFILL], "sqlite": SQLITE + [BACKFILL]}),
                             _run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE})),
        migrations.RemoveIndex(
            model_name='monitor',
            name='monitor_ping_due_idx',
        ),
    ]
