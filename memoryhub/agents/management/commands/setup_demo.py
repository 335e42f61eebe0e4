"""Everything a newcomer needs to look around: demo policies, one agent per demo role with a fresh token,
an admin login and a little shared state. Safe to run again (tokens and the password are renewed)."""

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from memoryhub.actors import SYSTEM, Actor
from memoryhub.agents.models import Agent
from memoryhub.agents.services import agent_create, token_rotate
from memoryhub.memories.models import Memory
from memoryhub.memories.services import memory_put
from policies.selectors import caller_for
from policies.services import policies_apply

DEMO_AGENTS = [
    ("sales-1", "sales"),
    ("support-1", "support"),
    ("inventory-1", "inventory"),
    ("orders-1", "orders"),
    ("docs-1", "docs"),
    ("code-review-1", "code-review"),
    ("lead-1", "lead"),
    ("scribe-1", "scribe"),  # summarizes episodes (log:*)
]


class Command(BaseCommand):
    help = "Load demo policies, agents (printing their tokens), an admin login and some shared state."

    def add_arguments(self, parser):
        parser.add_argument("--admin-user", default="admin")
        parser.add_argument("--admin-password", default="", help="default: a new random password, printed")
        parser.add_argument("--tokens-file", default="", help="also write the agents' tokens to this JSON file")

    def handle(self, *args, admin_user, admin_password, tokens_file, **options):
        policy_file = Path(settings.BASE_DIR) / "policies" / "demo.json"
        changes = policies_apply(actor=SYSTEM, document=json.loads(policy_file.read_text()), reason="setup_demo")
        self.stdout.write(f"policies: {policy_file.name} applied ({len(changes)} changes)")

        tokens = {}
        for agent_id, role in DEMO_AGENTS:
            if Agent.objects.filter(id=agent_id).exists():
                tokens[agent_id] = token_rotate(actor=SYSTEM, agent_id=agent_id, label="setup_demo")
            else:
                tokens[agent_id] = agent_create(actor=SYSTEM, agent_id=agent_id, role=role)[1]

        self._seed_state()

        password = admin_password or secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=admin_user, defaults={"is_staff": True})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

        if tokens_file:
            Path(tokens_file).write_text(json.dumps(tokens, indent=2))
        self.stdout.write("\nagent tokens (shown once; run again for new ones):")
        for agent_id, role in DEMO_AGENTS:
            self.stdout.write(f"  {agent_id:<15} {role:<12} {tokens[agent_id]}")
        self.stdout.write(f"\ndashboard login: {admin_user} / {password}")

    def _seed_state(self) -> None:
        if Memory.objects.exists():
            return
        sales = Actor(kind="agent", id="sales-1", role="sales")
        docs = Actor(kind="agent", id="docs-1", role="docs")
        seed = [
            (sales, "customer:acme", "profile", {"name": "Acme Corp", "deal_stage": "proposal", "seats": 40}),
            (docs, "docs:api", "readme", {"status": "draft", "sections": ["intro", "auth"]}),
            (sales, "counter:stock", "sku-42", {"n": 5}),
        ]
        for actor, namespace, key, content in seed:
            # Written the way agents should write: with an idempotency key (coordination_check looks).
            caller = caller_for(actor).with_idempotency_key(f"setup-demo:{namespace}/{key}")
            memory_put(actor=caller, namespace=namespace, key=key, content=content, reason="demo data")
