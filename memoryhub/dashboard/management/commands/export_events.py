"""python manage.py export_events [--after-seq N] [--namespace GLOB] [--type T] [--format jsonl|csv] > file

The dashboard's export without a request worker's timeout: for exports of millions of events. The
same lines, oldest first in keyset batches, and the same final line (`complete`, `last_seq`); run it
again with `--after-seq <last seq written>` to resume one that was cut off."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from memoryhub.dashboard.export import export_lines
from memoryhub.dashboard.forms import EventFilterForm


class Command(BaseCommand):
    help = "Export the event log (all, or filtered) as JSON Lines or CSV, ending with a completeness line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--after-seq", type=int, default=0, help="resume after this seq")
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
        for name in ("actor", "namespace", "resource", "type", "start", "end"):
            parser.add_argument(f"--{name}", default="")

    def handle(self, *args, **options) -> None:
        fields = ("actor", "namespace", "resource", "type", "start", "end")
        form = EventFilterForm({name: options[name] for name in fields})
        if not form.is_valid():
            raise CommandError(form.errors.as_text())
        for line in export_lines(form.query(), after=max(options["after_seq"], 0), fmt=options["format"]):
            self.stdout.write(line, ending="")
