"""Monitor kinds (existing monitors get theirs from the URL's scheme),
typed assertions, TLS verification and expiry alerts, heartbeats (each
monitor gets its own random ping uuid) and their pings."""

import django.db.models.deletion
import monitors.models
import monitors.validators
import uuid
from django.conf import settings
from django.db import migrations, models


def fill_kinds_and_ping_uuids(apps, schema_editor):
    Monitor = apps.get_model("monitors", "Monitor")
    for monitor in Monitor.objects.only("pk", "url").iterator():
        kind = "tcp" if monitor.url.lower().startswith("tcp:") else "http"
        Monitor.objects.filter(pk=monitor.pk).update(kind=kind, ping_uuid=uuid.uuid4())


class Migration(migrations.Migration):

    dependencies = [
        ('monitors', '0006_checkresult_missed'),
        ('workers', '0002_workernode_canary_error_workernode_checks_done_and_more'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Ping',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('at', models.DateTimeField()),
                ('kind', models.CharField(choices=[('success', 'Success'), ('start', 'Run started'), ('fail', 'Failure'), ('exit', 'Exit status'), ('log', 'Log (no state change)')], max_length=8)),
                ('exit_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('rid', models.UUIDField(blank=True, help_text='Pairs the start and end of one run.', null=True)),
                ('duration_ms', models.FloatField(blank=True, help_text="Since the run's /start, if there was one.", null=True)),
                ('method', models.CharField(max_length=8)),
                ('remote_addr', models.GenericIPAddressField(blank=True, null=True)),
                ('user_agent', models.CharField(blank=True, max_length=200)),
                ('body', models.TextField(blank=True, help_text='The request body, up to 10 kB.')),
            ],
            options={
                'ordering': ['-at', '-id'],
            },
        ),
        migrations.AddField(
            model_name='monitor',
            name='assertions',
            field=models.JSONField(blank=True, default=list, help_text='Conditions that must all hold: [{"source", "property", "op", "value"}].', validators=[monitors.validators.validate_assertions]),
        ),
        migrations.AddField(
            model_name='monitor',
            name='grace',
            field=models.PositiveIntegerField(default=300, help_text='Heartbeat: seconds a ping may be late.'),
        ),
        migrations.AddField(
            model_name='monitor',
            name='kind',
            field=models.CharField(blank=True, choices=[('http', 'HTTP(S)'), ('tcp', 'TCP port'), ('dns', 'DNS record'), ('icmp', 'ICMP ping'), ('heartbeat', 'Heartbeat (push / cron)')], help_text="http, tcp, dns, icmp or heartbeat; omitted: from the URL's scheme.", max_length=16),
        ),
        migrations.AddField(
            model_name='monitor',
            name='next_ping_due_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        # Unique, so added empty, filled with one uuid4 per row, then made unique.
        migrations.AddField(
            model_name='monitor',
            name='ping_uuid',
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(fill_kinds_and_ping_uuids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='monitor',
            name='ping_uuid',
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddField(
            model_name='monitor',
            name='run_starts',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='monitor',
            name='schedule',
            field=models.CharField(blank=True, help_text='Heartbeat: cron expression of when pings are expected.', max_length=100),
        ),
        migrations.AddField(
            model_name='monitor',
            name='timezone',
            field=models.CharField(default='UTC', help_text="Heartbeat: the schedule's time zone.", max_length=64),
        ),
        migrations.AddField(
            model_name='monitor',
            name='tls_alerted_days',
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='monitor',
            name='tls_alerted_expiry',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='monitor',
            name='tls_expiry_alert_days',
            field=models.JSONField(blank=True, default=monitors.models.default_tls_alert_days, help_text='Alert once when the certificate comes within each of these many days of expiring; [] for never.', validators=[monitors.validators.validate_alert_days]),
        ),
        migrations.AddField(
            model_name='monitor',
            name='tls_verify',
            field=models.BooleanField(default=True, help_text='Off: a self-signed or private-CA certificate is not a failure.'),
        ),
        migrations.AlterField(
            model_name='checkresult',
            name='error_kind',
            field=models.CharField(choices=[('ok', 'OK'), ('dns', 'DNS lookup failed'), ('refused', 'Connection refused'), ('unreachable', 'Host or network unreachable'), ('timeout', 'Timed out'), ('tls', 'TLS error'), ('connection', 'Connection error'), ('status', 'Unexpected status code'), ('keyword', 'Keyword missing'), ('redirects', 'Too many redirects'), ('invalid', 'Invalid target'), ('internal', 'Probe error'), ('assertion', 'Assertion failed'), ('late', 'Heartbeat late'), ('reported', 'Job reported a failure'), ('missed', 'Missed (no check ran)')], default='ok', max_length=16),
        ),
        migrations.AlterField(
            model_name='incident',
            name='cause_kind',
            field=models.CharField(blank=True, choices=[('ok', 'OK'), ('dns', 'DNS lookup failed'), ('refused', 'Connection refused'), ('unreachable', 'Host or network unreachable'), ('timeout', 'Timed out'), ('tls', 'TLS error'), ('connection', 'Connection error'), ('status', 'Unexpected status code'), ('keyword', 'Keyword missing'), ('redirects', 'Too many redirects'), ('invalid', 'Invalid target'), ('internal', 'Probe error'), ('assertion', 'Assertion failed'), ('late', 'Heartbeat late'), ('reported', 'Job reported a failure'), ('missed', 'Missed (no check ran)')], max_length=16),
        ),
        migrations.AlterField(
            model_name='monitor',
            name='url',
            field=models.CharField(blank=True, help_text='What is checked; none for a heartbeat, which is pinged instead.', max_length=2000, validators=[monitors.validators.validate_target_url]),
        ),
        migrations.AddIndex(
            model_name='monitor',
            index=models.Index(condition=models.Q(('next_ping_due_at__isnull', False), ('paused', False)), fields=['next_ping_due_at'], name='monitor_ping_due_idx'),
        ),
        migrations.AddField(
            model_name='ping',
            name='monitor',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='pings', to='monitors.monitor'),
        ),
        migrations.AddIndex(
            model_name='ping',
            index=models.Index(fields=['monitor', '-at'], name='ping_monitor_at_idx'),
        ),
        migrations.AddIndex(
            model_name='ping',
            index=models.Index(fields=['at'], name='ping_at_idx'),
        ),
        # The dispatcher's claim no longer walks past heartbeats.
        migrations.RemoveIndex(
            model_name='monitor',
            name='monitor_due_idx',
        ),
        migrations.AddIndex(
            model_name='monitor',
            index=models.Index(condition=models.Q(('paused', False), models.Q(('kind', 'heartbeat'), _negated=True)), fields=['next_check_at'], name='monitor_due_idx'),
        ),
    ]
