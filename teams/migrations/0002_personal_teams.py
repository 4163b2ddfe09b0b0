"""Every existing user gets the personal team new users get at sign-up,
as its owner: the apps' migrations then move each user's objects into it."""

from django.conf import settings
from django.db import migrations


def give_personal_teams(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Team = apps.get_model("teams", "Team")
    Membership = apps.get_model("teams", "Membership")
    have = set(Team.objects.filter(personal_of__isnull=False).values_list("personal_of_id", flat=True))
    users = list(User.objects.exclude(pk__in=have).only("pk", "username"))
    teams = Team.objects.bulk_create(
        [Team(name=user.username, personal_of_id=user.pk) for user in users], batch_size=1000)
    Membership.objects.bulk_create(
        [Membership(team=team, user_id=team.personal_of_id, role="owner") for team in teams], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ("teams", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Backwards: the teams go with their table in 0001.
        migrations.RunPython(give_personal_teams, migrations.RunPython.noop),
    ]
