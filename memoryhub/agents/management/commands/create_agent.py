from django.core.management.base import BaseCommand, CommandError

from memoryhub.actors import SYSTEM
from memoryhub.agents.services import agent_create
from memoryhub.errors import Invalid


class Command(BaseCommand):
    help = "Create an agent (its id is NAME) and print its API token, once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--role", required=True)
        parser.add_argument("--description", default="")

    def handle(self, *args, name, role, description, **options):
        try:
            agent, token = agent_create(actor=SYSTEM, agent_id=name, role=role, description=description)
        except Invalid as exc:
            raise CommandError(f"{exc.message}: {exc.details}")
        self.stdout.write(f"created agent {agent.id} with role {agent.role}; its token (shown once):")
        self.stdout.write(token)
