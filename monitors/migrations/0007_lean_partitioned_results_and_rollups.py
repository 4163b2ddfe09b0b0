"""Lean raw results: the natural key as the key, the node by id, no index
the key already covers; on PostgreSQL the table is rebuilt partitioned by day.
And the rollups' tables (hour and day buckets of uptime and latency).

PostgreSQL: the old table is renamed, a partitioned one created (columns
ordered widest first, so no byte is lost to alignment; monitor, region and
node ids as 4-byte integers: ids stay far below 2^31), its days created from
the oldest result to three days ahead, the rows copied with their node names
turned into node ids (a node known only from results gets an offline
WorkerNode row, so no name is lost), and the old table dropped. This holds
the table while it copies: a deployment with many results migrates in a
maintenance window. SQLite: the same model changes on its plain table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import django.db.models.deletion
from django.db import migrations, models

from monitors import partitions

OLD = "monitors_checkresult_unpartitioned"
COLUMNS = ("id, scheduled_at, checked_at, latency_ms, tls_expires_at, monitor_id, region_id, node_id, status_code, "
           "ok, in_maintenance, impaired, error_kind, missed_reason, error, missed_until")

CREATE = f"""
CREATE SEQUENCE monitors_checkresult_ids;
CREATE TABLE monitors_checkresult (
    id bigint NOT NULL DEFAULT nextval('monitors_checkresult_ids'),
    scheduled_at timestamp with time zone NOT NULL,
    checked_at timestamp with time zone NOT NULL,
    latency_ms double precision NULL,
    tls_expires_at timestamp with time zone NULL,
    monitor_id integer NOT NULL,
    region_id integer NOT NULL,
    node_id integer NULL,
    status_code smallint NULL CHECK (status_code >= 0),
    ok boolean NULL,
    in_maintenance boolean NOT NULL,
    impaired boolean NOT NULL,
    error_kind varchar(16) NOT NULL,
    missed_reason varchar(16) NOT NULL DEFAULT '',
    error text NOT NULL,
    missed_until timestamp with time zone NULL,
    CONSTRAINT checkresult_natural_key PRIMARY KEY (monitor_id, region_id, scheduled_at),
    CONSTRAINT checkresult_monitor_fk FOREIGN KEY (monitor_id) REFERENCES monitors_monitor (id)
        DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT checkresult_region_fk FOREIGN KEY (region_id) REFERENCES workers_region (id)
        DEFERRABLE INITIALLY DEFERRED
) PARTITION BY RANGE (scheduled_at);
ALTER SEQUENCE monitors_checkresult_ids OWNED BY monitors_checkresult.id;
CREATE INDEX checkresult_failed_idx ON monitors_checkresult (monitor_id, scheduled_at) WHERE NOT ok;
CREATE INDEX checkresult_missed_run_idx ON monitors_checkresult (monitor_id, region_id, missed_until)
    WHERE error_kind = 'missed';
-- The admin opens a result by id: BRIN, a few KB, since ids grow with time.
CREATE INDEX checkresult_id_brin ON monitors_checkresult USING brin (id);
CREATE TABLE {partitions.DEFAULT} PARTITION OF monitors_checkresult DEFAULT;
"""

NODES = f"""
INSERT INTO workers_workernode (name, region_id, state, version, concurrency, last_heartbeat_at, checks_done,
                                failures, last_error, canary_error, rejected_results)
SELECT node, min(region_id), 'offline', '', 0, max(checked_at), 0, 0, '', '', 0
FROM {OLD} WHERE node <> '' AND node NOT IN (SELECT name FROM workers_workernode) GROUP BY node;
"""

COPY = f"""
INSERT INTO monitors_checkresult ({COLUMNS})
SELECT o.id, o.scheduled_at, o.checked_at, o.latency_ms, o.tls_expires_at, o.monitor_id, o.region_id, n.id,
       o.status_code, o.ok, o.in_maintenance, o.impaired, o.error_kind, o.missed_reason, o.error, o.missed_until
FROM {OLD} o LEFT JOIN workers_workernode n ON n.name = o.node;
SELECT setval('monitors_checkresult_ids', coalesce((SELECT max(id) FROM monitors_checkresult), 0) + 1, false);
DROP TABLE {OLD};
"""


def partition_the_table(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("ALTER TABLE monitors_checkresult DROP CONSTRAINT checkresult_natural_key")
        cursor.execute("DROP INDEX checkresult_scheduled_idx")
        cursor.execute("DROP INDEX checkresult_missed_run_idx")  # made again on the new table
        cursor.execute(f"ALTER TABLE monitors_checkresult RENAME TO {OLD}")
        cursor.execute(CREATE)
        cursor.execute(f"SELECT min(scheduled_at) FROM {OLD}")
        oldest = cursor.fetchone()[0]
        today = datetime.now(UTC).date()
        back = (today - oldest.astimezone(UTC).date()).days if oldest else 1
        partitions.ensure_partitions(today, back=max(back, 1))
        cursor.execute(NODES)
        cursor.execute(COPY)


def node_names_to_ids(apps, schema_editor) -> None:
    CheckResult = apps.get_model("monitors", "CheckResult")
    WorkerNode = apps.get_model("workers", "WorkerNode")
    names = CheckResult.objects.exclude(node_name="").values_list("node_name", "region_id").distinct()
    for name, region_id in names:
        node, _ = WorkerNode.objects.get_or_create(
            name=name, defaults={"region_id": region_id, "state": "offline", "last_heartbeat_at": datetime.now(UTC)})
        CheckResult.objects.filter(node_name=name).update(node=node)


class OnVendor(migrations.operations.base.Operation):
    """An operation run on one database vendor only; the model state moves on every vendor."""

    reduces_to_sql = False

    def __init__(self, vendor: str, operation: migrations.operations.base.Operation):
        self.vendor, self.operation = vendor, operation
        self.reversible = operation.reversible

    def deconstruct(self):
        return self.__class__.__name__, [self.vendor, self.operation], {}

    def state_forwards(self, app_label, state):
        self.operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return f"On {self.vendor}: {self.operation.describe()}"


NODE_FIELD = models.ForeignKey(blank=True, db_constraint=False, null=True,
                               on_delete=django.db.models.deletion.DO_NOTHING, related_name="+",
                               to="workers.workernode")
NATURAL_KEY = models.UniqueConstraint(fields=("monitor", "region", "scheduled_at"), name="checkresult_natural_key")
FAILED_INDEX = models.Index(condition=models.Q(("ok", False)), fields=["monitor", "scheduled_at"],
                            name="checkresult_failed_idx")


def sqlite(*operations):
    return [OnVendor("sqlite", operation) for operation in operations]


class Migration(migrations.Migration):
    atomic = True

    dependencies = [
        # After missed_until, which the rebuilt table carries (its index too).
        ("monitors", "0007_checkresult_missed_until"),
        ("workers", "0002_workernode_canary_error_workernode_checks_done_and_more"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="checkresult", name="checkresult_natural_key"),
                migrations.RemoveIndex(model_name="checkresult", name="checkresult_scheduled_idx"),
                migrations.RemoveField(model_name="checkresult", name="node"),
                migrations.AddField(model_name="checkresult", name="node", field=NODE_FIELD),
                migrations.AddIndex(model_name="checkresult", index=FAILED_INDEX),
                migrations.AddConstraint(model_name="checkresult", constraint=NATURAL_KEY),
            ],
            database_operations=[
                *sqlite(
                    migrations.RemoveConstraint(model_name="checkresult", name="checkresult_natural_key"),
                    migrations.RemoveIndex(model_name="checkresult", name="checkresult_scheduled_idx"),
                    migrations.RenameField(model_name="checkresult", old_name="node", new_name="node_name"),
                    migrations.AddField(model_name="checkresult", name="node", field=NODE_FIELD),
                    migrations.RunPython(node_names_to_ids, migrations.RunPython.noop),
                    migrations.RemoveField(model_name="checkresult", name="node_name"),
                    migrations.AddIndex(model_name="checkresult", index=FAILED_INDEX),
                    migrations.AddConstraint(model_name="checkresult", constraint=NATURAL_KEY),
                ),
                OnVendor("postgresql", migrations.RunPython(partition_the_table)),
            ],
        ),
        # Rollups (monitors/rollups.py): hour and day buckets, and where rolling up stands.
        migrations.CreateModel(
            name='RollupProgress',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rolled_up_to', models.DateTimeField(blank=True, null=True)),
                ('seen_id', models.BigIntegerField(default=0)),
                ('previous_seen_id', models.BigIntegerField(default=0)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name_plural': 'rollup progress',
            },
        ),
        migrations.CreateModel(
            name='Rollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('resolution', models.CharField(choices=[('minute', 'Minute'), ('hour', 'Hour'), ('day', 'Day')], max_length=6)),
                ('start', models.DateTimeField()),
                ('checks', models.PositiveIntegerField(default=0, help_text='Results that ran (missed slots are not checks).')),
                ('failed_checks', models.PositiveIntegerField(default=0)),
                ('maintenance_checks', models.PositiveIntegerField(default=0)),
                ('degraded_checks', models.PositiveIntegerField(default=0, help_text='Correct but slower than the threshold.')),
                ('missed_checks', models.PositiveIntegerField(default=0)),
                ('covered_seconds', models.FloatField(default=0)),
                ('down_seconds', models.FloatField(default=0)),
                ('latency_count', models.PositiveIntegerField(default=0)),
                ('latency_sum', models.FloatField(default=0)),
                ('latency_min', models.FloatField(blank=True, null=True)),
                ('latency_max', models.FloatField(blank=True, null=True)),
                ('histogram', models.BinaryField(default=b'')),
                ('monitor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='rollups', to='monitors.monitor')),
                ('region', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='workers.region')),
            ],
            options={
                'indexes': [models.Index(fields=['monitor', 'resolution', 'start'], name='rollup_monitor_idx'), models.Index(fields=['resolution', 'start'], name='rollup_start_idx')],
            },
        ),
    ]
