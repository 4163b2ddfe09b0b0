import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the first admin user when no superuser exists (used by the run command)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, username, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        if User.objects.filter(username=username).exists():
            # Promoting an ordinary account would hand its owner the admin.
            raise CommandError(
                f"A user named {username!r} exists but is no superuser: pass --username with another name."
            )
        password = settings.LOOPR_ADMIN_PASSWORD or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"Created admin user {username!r}.")
        if not settings.LOOPR_ADMIN_PASSWORD:
            self.stdout.write(f"Its password (shown once): {password}")
