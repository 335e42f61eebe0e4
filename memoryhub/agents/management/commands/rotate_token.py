from django.core.management.base import BaseCommand, CommandError

from memoryhub.actors import SYSTEM
from memoryhub.agents.services import token_rotate
from memoryhub.errors import NotFound


class Command(BaseCommand):
    help = "Revoke an agent's tokens and print a new one, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--keep-existing", action="store_true", help="do not revoke the current tokens")

    def handle(self, *args, name, keep_existing, **options):
        try:
            token = token_rotate(actor=SYSTEM, agent_id=name, revoke_existing=not keep_existing)
        except NotFound as exc:
            raise CommandError(exc.message)
        self.stdout.write(f"new token for {name} (shown once):")
        self.stdout.write(token)
