import re

from django.core.management.base import BaseCommand, CommandError

from django.conf import settings

from workers import broker_acl
from workers.models import NodeToken


class Command(BaseCommand):
    help = "Enrol a probe node for REGION: prints its token (shown once; stored hashed) as the last line."

    def add_arguments(self, parser):
        parser.add_argument("region")
        parser.add_argument("--label", default="", help="Who or what the token is for.")

    def handle(self, region, label="", **options):
        if not re.fullmatch(r"[-a-zA-Z0-9_]{1,64}", region):
            raise CommandError("REGION: letters, digits, - and _ only (at most 64).")
        token, plaintext = NodeToken.issue(region, label)
        self.stderr.write(f"Token {token.hint}… for region {region}; give it to the node as LOOPR_NODE_TOKEN.")
        self.stderr.write(
            f"Its broker user is {broker_acl.username(region)}, with this token as its password "
            f"(REDIS_URL=redis://{broker_acl.username(region)}:<token>@<central-redis>:6379/<db>); "
            + ("it was updated on the broker." if settings.LOOPR_BROKER_ACL
               else "set LOOPR_BROKER_ACL=true, or apply `manage.py broker_acl` yourself."))
        self.stdout.write(plaintext)
