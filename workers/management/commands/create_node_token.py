import re

from django.core.management.base import BaseCommand, CommandError

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
        self.stdout.write(plaintext)
