import json

from django.core.management.base import BaseCommand

from policies.selectors import policies_export


class Command(BaseCommand):
    help = "Print the stored policies as a policy JSON file (the format apply_policies reads)."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(policies_export(), indent=2))
