"""Work run in spawned processes: framework code on the client only (no Django in these processes,
which is how agents use the integrations)."""

from __future__ import annotations

import asyncio


def append_to_session(hub_url: str, token: str, session_id: str, worker: int, rounds: int) -> None:
    from memoryhub.client import AsyncHubClient
    from memoryhub.integrations.openai_agents import HubSession

    async def main():
        async with AsyncHubClient(hub_url, token=token) as hub:
            session = HubSession(session_id, hub, namespace="counter:sessions")  # an optimistic namespace
            for n in range(rounds):
                await session.add_items([{"worker": worker, "n": n, "part": part} for part in range(3)])

    asyncio.run(main())
