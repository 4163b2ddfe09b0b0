"""Monitors, channels, windows and policies belong to teams: each moves into
its owner's personal team, and the owner stays on as its creator."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_into_personal_teams(apps, schema_editor):
    # Each object into its owner's personal team (teams 0002 gave every
    # user one): the same people see it as before.
    Team = apps.get_model("teams", "Team")
    for name in ['Monitor', 'MaintenanceWindow']:
        model = apps.get_model('monitors', name)
        personal = Team.objects.filter(personal_of_id=models.OuterRef("owner_id")).values("pk")[:1]
        model.objects.filter(team__isnull=True).update(team_id=models.Subquery(personal))
    if schema_editor.connection.vendor == "postgresql":
        # The new foreign keys' deferred checks now, not at commit: PostgreSQL
        # refuses to alter a table with pending trigger events (NOT NULL below).
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('monitors', '0010_admin_console_indexes'),
        ('notifications', '0006_event_choices_merged'),
        ('teams', '0002_personal_teams'),
        ('workers', '0002_workernode_canary_error_workernode_checks_done_and_more'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='monitor',
            name='monitor_owner_name_idx',
        ),
        migrations.AddField(
            model_name='maintenancewindow',
            name='team',
            field=models.ForeignKey(help_text='The team it belongs to; its members see it.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team'),
        ),
        migrations.AddField(
            model_name='monitor',
            name='team',
            field=models.ForeignKey(help_text='The team it belongs to; its members see it.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team'),
        ),
        migrations.AlterField(
            model_name='maintenancewindow',
            name='owner',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='maintenance_windows', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='monitor',
            name='owner',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='monitors', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='monitor',
            index=models.Index(fields=['team', 'name', 'id'], name='monitor_team_name_idx'),
        ),
        migrations.RunPython(move_into_personal_teams, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='monitor',
            name='team',
            field=models.ForeignKey(help_text='The team it belongs to; its members see it.', on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team'),
        ),
        migrations.AlterField(
            model_name='maintenancewindow',
            name='team',
            field=models.ForeignKey(help_text='The team it belongs to; its members see it.', on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team'),
        ),
    ]
