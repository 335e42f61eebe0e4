"""`python manage.py demo_swarm [--url URL] [--rounds N] [--pace S]`: simulated agents act out the
scenarios against a RUNNING hub while you watch the dashboard.

The command runs next to the hub (same settings and database) only to hand the demo agents fresh
tokens; everything they do goes through the hub's REST API and websocket like any agent's."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from memoryhub.actors import SYSTEM
from memoryhub.agents.models import Agent, AgentToken
from memoryhub.agents.services import agent_create, token_revoke, token_rotate
from memoryhub.client import HubClient, HubError, TransportError
from memoryhub.demo.swarm import AGENTS, Swarm

TOKEN_LABEL = "demo_swarm"


class Command(BaseCommand):
    help = "Run simulated agents through the coordination scenarios against a running hub, narrating."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=os.environ.get("MEMORYHUB_URL") or "http://127.0.0.1:8000")
        parser.add_argument("--rounds", type=int, default=1, help="how many times to play the scenarios")
        parser.add_argument("--pace", type=float, default=1.0, help="seconds between steps (0: as fast as possible)")

    def handle(self, *args, url, rounds, pace, **options):
        if rounds < 1:
            raise CommandError("--rounds must be at least 1")
        missing = sorted(
            set(AGENTS) - {"docs-2"} - set(Agent.objects.filter(id__in=AGENTS).values_list("id", flat=True))
        )
        if missing:
            raise CommandError(f"demo agents {', '.join(missing)} are missing: run `python manage.py setup_demo` first")
        if not Agent.objects.filter(id="docs-2").exists():
            # A second docs worker, so two agents can race for the same render tasks.
            agent_create(actor=SYSTEM, agent_id="docs-2", role="docs", description="demo_swarm's second docs worker")
            self.stdout.write("created agent docs-2 (role docs) for the duplicate-work scenario")

        # Extra tokens, not rotations: tokens handed out by setup_demo keep working.
        tokens = {
            agent_id: token_rotate(actor=SYSTEM, agent_id=agent_id, label=TOKEN_LABEL, revoke_existing=False)
            for agent_id in AGENTS
        }
        try:
            self._check_hub(url, tokens["lead-1"])
            self.stdout.write(f"demo swarm against {url}: {rounds} round(s); watch {url}/ as it happens")
            swarm = Swarm(url, tokens, out=self.stdout.write, pace=pace)
            try:
                outcomes = swarm.run(rounds)
            except HubError as error:
                raise CommandError(f"the hub refused a demo step: {error}") from error
            finally:
                swarm.close()
        finally:
            for token in AgentToken.objects.filter(agent_id__in=AGENTS, label=TOKEN_LABEL, revoked_at=None):
                token_revoke(actor=SYSTEM, token_id=token.id)

        failed = [o for o in outcomes if not o.ok]
        self.stdout.write("")
        for outcome in outcomes:
            self.stdout.write(f"{'✓' if outcome.ok else '✗'} round {outcome.round}: {outcome.scenario}")
        if failed:
            raise CommandError(f"{len(failed)} scenario(s) did not end as they should")
        self.stdout.write(self.style.SUCCESS(f"all {len(outcomes)} scenario runs ended as they should"))

    def _check_hub(self, url: str, token: str) -> None:
        try:
            with HubClient(url, token=token) as hub:
                hub.me()
        except TransportError as error:
            raise CommandError(f"no hub answers at {url} ({error.message}); start it first (make run)") from error
