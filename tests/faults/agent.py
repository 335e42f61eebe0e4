"""An agent process for the fault tests, driven through the Python client:

    python -m tests.faults.agent hold BASE TOKEN     # take a lock and a claim, report them, then hang
    python -m tests.faults.agent zombie BASE TOKEN   # claim, report, stall until a line on stdin, then
                                                     # try to heartbeat and complete; report the answers
Each report is one JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
import time

from memoryhub.client import HubClient
from memoryhub.client.errors import HubError


def main(mode: str, base: str, token: str) -> None:
    hub = HubClient(base, token=token)
    if mode == "hold":
        lease = hub.acquire("pricing:table", ttl=3)
        task = hub.claim(role="worker", ttl=3)
        print(json.dumps({"lease": lease.id, "fencing_token": lease.fencing_token, "task": task.id}), flush=True)
        while True:  # killed -9 here, holding both
            time.sleep(60)
    task = hub.claim(role="worker", ttl=2)
    print(json.dumps({"task": task.id}), flush=True)
    sys.stdin.readline()  # stalled (a GC pause, a hung tool call) while its claim lapses
    answers = {}
    for name, call in (
        ("heartbeat", lambda: hub.heartbeat_task(task.id, ttl=60)),
        ("complete", lambda: hub.complete_task(task.id, {"by": "zombie"})),
    ):
        try:
            call()
            answers[name] = "accepted"
        except HubError as error:
            answers[name] = error.code
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
