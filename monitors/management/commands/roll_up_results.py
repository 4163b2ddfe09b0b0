from django.core.management.base import BaseCommand

from monitors import rollups


class Command(BaseCommand):
    help = ("Build the hour and day rollups from the raw results stored (an upgrade's history, or after the "
            "roll-up task was stopped); the periodic task does the same a time budget at a time.")

    def handle(self, **options):
        total = 0
        while True:
            rolled, more_left = rollups.roll_up(budget_seconds=60)
            total += rolled
            if rolled:
                self.stdout.write(f"rolled up {total} hours, to {rollups.rolled_up_to():%Y-%m-%d %H:%M} UTC")
            if not more_left:
                break
        self.stdout.write(f"Done: {total} hours rolled up.")
