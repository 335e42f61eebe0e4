import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from memoryhub.actors import SYSTEM
from memoryhub.errors import Invalid
from policies.services import policies_apply


class Command(BaseCommand):
    help = "Make the stored policies equal to a JSON policy file (adds, changes, removes; one event each)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="path to the policy JSON file")
        parser.add_argument("--dry-run", action="store_true", help="print the changes without applying them")

    def handle(self, *args, file, dry_run, **options):
        try:
            document = json.loads(Path(file).read_text())
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc}")
        except json.JSONDecodeError as exc:
            raise CommandError(f"{file} is not valid JSON: {exc}")
        try:
            changes = policies_apply(actor=SYSTEM, document=document, dry_run=dry_run, reason=f"apply_policies {file}")
        except Invalid as exc:
            raise CommandError(f"{file}: {exc.message} (nothing changed)")
        for change in changes:
            sign = {"added": "+", "removed": "-", "changed": "~"}[change.action]
            detail = change.after if change.after is not None else change.before
            self.stdout.write(f"{sign} {change.kind} {'/'.join(change.key)}: {json.dumps(detail, sort_keys=True)}")
        verb = "would change" if dry_run else "changed"
        self.stdout.write(f"{len(changes)} policy entries {verb}" if changes else "policies already match the file")
