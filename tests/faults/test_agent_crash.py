"""An agent killed (kill -9) while holding a lock and a claim: the lock is free at its TTL (not before)
with a higher fencing token, the task goes back to the queue and is completed exactly once by another
agent. A zombie (an agent that stalled past its claim and comes back) can neither revive the claim by
heartbeat nor complete the task, whether or not someone else claimed it meanwhile."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import pytest

from memoryhub.client import HubClient
from memoryhub.client.errors import LockHeld
from tests.faults.conftest import hub_server
from tests.servers import ROOT

POLICIES = {"namespaces": [{"pattern": "pricing:*", "readers": ["*"], "writers": ["*"]}]}
AGENTS = {"creator": "worker", "doomed": "worker", "zombie": "worker", "survivor": "worker"}


def _agent(mode: str, base: str, token: str) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.agent", mode, base, token],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert line, f"the {mode} agent died before reporting"
    return process, json.loads(line)


def _claim_until(client: HubClient, task_id: int, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.claim(role="worker", ttl=30)
        if task is not None:
            assert task.id == task_id, f"claimed {task.id}, expected {task_id}"
            return task
        time.sleep(0.1)
    pytest.fail(f"task {task_id} never came back to the queue")


def _completions(hub, task_id: int) -> list[str]:
    return [
        row[0]
        for row in hub.query(
            "SELECT actor_id FROM events_event WHERE type = 'task.completed' AND resource = %s", (f"task:{task_id}",)
        )
    ]


def test_a_killed_holder_frees_its_lock_at_ttl_and_its_task_is_done_once(make_hub):
    hub = make_hub(policies=POLICIES, agents=AGENTS)
    with hub_server(hub, env={"MEMORYHUB_SWEEP_INTERVAL": "1"}) as (base, _):
        creator = HubClient(base, token=hub.tokens["creator"])
        created = creator.create_task(role="worker", kind="reprice", payload={"sku": 1})
        doomed, held = _agent("hold", base, hub.tokens["doomed"])
        doomed.kill()
        doomed.wait(timeout=10)
        [(expires_at,)] = hub.query("SELECT expires_at FROM locks_lease WHERE id = %s", (held["lease"],))

        survivor = HubClient(base, token=hub.tokens["survivor"])
        with pytest.raises(LockHeld):
            survivor.acquire("pricing:table", ttl=10)  # still held: the TTL has not run out
        lease = survivor.acquire("pricing:table", ttl=10, wait=10)
        granted_at = datetime.fromisoformat(lease.raw["acquired_at"].replace("Z", "+00:00"))
        assert granted_at >= expires_at, "granted before the dead holder's lease expired"
        assert (granted_at - expires_at).total_seconds() < 2, "not free at its TTL"
        assert lease.fencing_token > held["fencing_token"]

        task = _claim_until(survivor, held["task"], timeout=10)
        assert task.id == created.id
        survivor.complete_task(task.id, {"by": "survivor"})
        survivor.complete_task(task.id, {"by": "survivor"})  # a retry of the completion: a replay
    assert _completions(hub, created.id) == ["survivor"]
    [(status, attempts, result)] = hub.query(
        "SELECT status, attempts, result FROM tasks_task WHERE id = %s", (created.id,)
    )
    assert (status, attempts, result) == ("completed", 2, {"by": "survivor"})
    hub.assert_log_has_no_seq_gap()


@pytest.mark.parametrize("claimed_meanwhile", [False, True], ids=["nobody claimed it meanwhile", "reclaimed meanwhile"])
def test_a_zombie_cannot_revive_or_complete_a_lapsed_claim(make_hub, claimed_meanwhile):
    hub = make_hub(policies=POLICIES, agents=AGENTS)
    # A slow sweeper: the lapsed claim is still `claimed` in the row when the zombie comes back, so
    # only the claim's expiry (not the sweeper having requeued it) can refuse the zombie.
    with hub_server(hub, env={"MEMORYHUB_SWEEP_INTERVAL": "60"}) as (base, _):
        creator = HubClient(base, token=hub.tokens["creator"])
        created = creator.create_task(role="worker", kind="reprice", payload={})
        zombie, claimed = _agent("zombie", base, hub.tokens["zombie"])
        assert claimed["task"] == created.id
        time.sleep(2.5)  # its 2 s claim lapses while it stalls
        survivor = HubClient(base, token=hub.tokens["survivor"])
        if claimed_meanwhile:
            deadline = time.monotonic() + 5
            while survivor.claim(role="worker", ttl=30) is None:
                assert time.monotonic() < deadline, "a lapsed claim was not claimable"
                time.sleep(0.1)
        out, _ = zombie.communicate("go\n", timeout=30)
        answers = json.loads(out.strip().splitlines()[-1])
        assert answers["heartbeat"] != "accepted", answers
        assert answers["complete"] != "accepted", answers
        if not claimed_meanwhile:
            _claim_until(survivor, created.id, timeout=5)
        survivor.complete_task(created.id, {"by": "survivor"})
    assert _completions(hub, created.id) == ["survivor"]
    [(status, result)] = hub.query("SELECT status, result FROM tasks_task WHERE id = %s", (created.id,))
    assert (status, result) == ("completed", {"by": "survivor"})
