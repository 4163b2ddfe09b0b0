# slug and managed (issue 17, monitoring as code): the file's key for an object (unique per team and type), and
# whether a file manages it. After the teams migration: existing objects are already in their teams.

from django.conf import settings
from django.db import migrations, models

from loopr.declarative import free_slug


def fill_slugs(apps, schema_editor):
    """Existing rows get their name's slug, unique per team (-2, -3… on a clash)."""
    for model_name in ['monitor', 'maintenancewindow']:
        model = apps.get_model('monitors', model_name)
        taken: dict[int, set[str]] = {}
        changed = []
        for obj in model.objects.only("id", "team_id", "name", "slug").order_by("id").iterator(chunk_size=2000):
            obj.slug = free_slug(obj.name, taken.setdefault(obj.team_id, set()))
            changed.append(obj)
            if len(changed) >= 2000:
                model.objects.bulk_update(changed, ["slug"])
                changed = []
        model.objects.bulk_update(changed, ["slug"])


class Migration(migrations.Migration):

    dependencies = [
        ('monitors', '0011_teams_owned_by_teams'),
        ('notifications', '0008_config_slug_managed'),
        ('workers', '0002_workernode_canary_error_workernode_checks_done_and_more'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='maintenancewindow',
            name='managed',
            field=models.BooleanField(default=False, help_text='Created or last applied from a loopr.yaml: edits made elsewhere show as drift in the next plan.'),
        ),
        migrations.AddField(
            model_name='maintenancewindow',
            name='slug',
            field=models.SlugField(blank=True, db_index=False, help_text='Its stable name in a loopr.yaml, unique per team among its type; omitted: made from the name.', max_length=100),
        ),
        migrations.AddField(
            model_name='monitor',
            name='managed',
            field=models.BooleanField(default=False, help_text='Created or last applied from a loopr.yaml: edits made elsewhere show as drift in the next plan.'),
        ),
        migrations.AddField(
            model_name='monitor',
            name='slug',
            field=models.SlugField(blank=True, db_index=False, help_text='Its stable name in a loopr.yaml, unique per team among its type; omitted: made from the name.', max_length=100),
        ),
        migrations.RunPython(fill_slugs, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='maintenancewindow',
            constraint=models.UniqueConstraint(condition=models.Q(('slug', ''), _negated=True), fields=('team', 'slug'), name='maintenancewindow_team_slug'),
        ),
        migrations.AddConstraint(
            model_name='monitor',
            constraint=models.UniqueConstraint(condition=models.Q(('slug', ''), _negated=True), fields=('team', 'slug'), name='monitor_team_slug'),
        ),
    ]
