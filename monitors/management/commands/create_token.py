from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from teams.models import ApiToken


class Command(BaseCommand):
    help = ("Print USERNAME's personal API token for scripts (a write token for all their teams; the same key "
            "until --reset); the key is the last line.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reset", action="store_true", help="Replace it: the old key stops working.")

    def handle(self, username, reset=False, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}; create one with `manage.py createsuperuser`.")
        self.stdout.write(ApiToken.objects.cli_key(user, reset=reset))
