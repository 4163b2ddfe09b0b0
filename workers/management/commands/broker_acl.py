from __future__ import annotations

from django.core.management.base import BaseCommand

from workers import broker_acl
from workers.models import NodeToken


class Command(BaseCommand):
    help = ("The Redis ACL users of the probe nodes, one per region (workers/broker_acl.py): printed as ACL file "
            "lines, or with --apply created or updated on the broker REDIS_URL names.")

    def add_arguments(self, parser):
        parser.add_argument("regions", nargs="*", help="Regions (default: every region with a token).")
        parser.add_argument("--apply", action="store_true", help="Run ACL SETUSER on the broker.")
        parser.add_argument("--redis6", action="store_true",
                            help="Print rules for Redis 6 (no write-only keys): a node can then read ingest.")

    def handle(self, regions, apply=False, redis6=False, **options):
        users = NodeToken.broker_users(regions or None)
        if apply:
            for name in NodeToken.sync_broker_users(regions or None):
                self.stderr.write(f"applied user {broker_acl.username(name)}")
            return
        try:  # the broker, if it answers, says which commands it has (CLIENT SETINFO is 7.2+)
            client = broker_acl.broker_client()
            known, db = broker_acl._known_commands(client), broker_acl.db_of(client)
        except Exception:
            known, db = None, 0
        for name, hashes in users.items():
            self.stdout.write(broker_acl.acl_file_line(name, hashes, db, write_only=not redis6, known=known))
