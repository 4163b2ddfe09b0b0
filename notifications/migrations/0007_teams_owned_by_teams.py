"""Monitors, channels, windows and policies belong to teams: each moves into
its owner's personal team, and the owner stays on as its creator."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_into_personal_teams(apps, schema_editor):
    # Each object into its owner's personal team (teams 0002 gave every
    # user one): the same people see it as before.
    Team = apps.get_model("teams", "Team")
    for name in ['Channel', 'EscalationPolicy']:
        model = apps.get_model('notifications', name)
        personal = Team.objects.filter(personal_of_id=models.OuterRef("owner_id")).values("pk")[:1]
        model.objects.filter(team__isnull=True).update(team_id=models.Subquery(personal))
    if schema_editor.connection.vendor == "postgresql":
        # The new foreign keys' deferred checks now, not at commit: PostgreSQL
        # refuses to alter a table with pending trigger events (NOT NULL below).
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0006_event_choices_merged'),
        ('teams', '0002_personal_teams'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='channel',
            name='team',
            field=models.ForeignKey(help_text='The team it belongs to; its members see it.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team'),
        ),
        migrations.AddField(
            model_name='escalationpolicy',
            name='team',
            field=models.ForeignKey(help_text='The team it belongs to; its members see it.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team'),
        ),
        migrations.AlterField(
            model_name='channel',
            name='is_default',
            field=models.BooleanField(default=False, help_text="Subscribed to the team's new monitors."),
        ),
        migrations.AlterField(
            model_name='channel',
            name='owner',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='channels', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='escalationpolicy',
            name='owner',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='escalation_policies', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(move_into_personal_teams, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='channel',
            name='team',
            field=models.ForeignKey(help_text='The team it belongs to; its members see it.', on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team'),
        ),
        migrations.AlterField(
            model_name='escalationpolicy',
            name='team',
            field=models.ForeignKey(help_text='The team it belongs to; its members see it.', on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team'),
        ),
    ]
