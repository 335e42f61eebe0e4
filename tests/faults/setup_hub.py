"""Prepare a fault test's private database: migrate, apply the policies, create the agents; print their
tokens as one JSON line. Input on stdin: {"policies": {...}, "agents": {"id": "role", ...}}.

    DATABASE_URL=postgres://.../hub_1 python -m tests.faults.setup_hub < spec.json
"""

from __future__ import annotations

import json
import os
import sys

import django


def main() -> None:
    spec = json.load(sys.stdin)
    django.setup()
    from django.core.management import call_command

    from memoryhub.actors import SYSTEM
    from memoryhub.agents.services import agent_create
    from policies.services import policies_apply

    call_command("migrate", verbosity=0, interactive=False)
    policies_apply(actor=SYSTEM, document=spec["policies"])
    tokens = {}
    for agent_id, role in spec["agents"].items():
        _, tokens[agent_id] = agent_create(actor=SYSTEM, agent_id=agent_id, role=role)
    print(json.dumps(tokens))


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryhub.settings")
    main()
