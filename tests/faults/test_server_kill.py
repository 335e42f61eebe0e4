"""kill -9 of one of two server processes in the middle of load (counters incremented with `update()`,
lock acquisitions waiting on one shared resource): every acknowledged increment is in the final state
and the log exactly once, leases on the shared resource never overlapped, the log has no seq gap, and
no LockWait row is left open once the killed process's waits are past their deadline."""

from __future__ import annotations

import threading
import time

from memoryhub.client import HubClient
from memoryhub.client.errors import HubError, LockHeld
from tests.faults.conftest import hub_server, kill_group

AGENTS = 16
KEYS = 4
POLICIES = {"namespaces": [{"pattern": "counter:*", "readers": ["*"], "writers": ["*"]}]}
RUN_SECONDS = 8.0
KILL_AT = 3.0
WAIT_SECONDS = 2.0


def test_kill_9_of_one_server_mid_load_loses_nothing_and_leaves_no_wait_open(make_hub):
    hub = make_hub(policies=POLICIES, agents={f"w{i}": "worker" for i in range(AGENTS)})
    env = {"MEMORYHUB_SWEEP_INTERVAL": "1"}  # the survivor's in-process sweeper tidies up after the dead
    with hub_server(hub, env=env) as (doomed, doomed_process), hub_server(hub, env=env) as (survivor, _):
        HubClient(survivor, token=hub.tokens["w0"]).put("counter:c", "k0", {"n": 0})
        for key in range(1, KEYS):
            HubClient(survivor, token=hub.tokens["w0"]).put("counter:c", f"k{key}", {"n": 0})
        acked: dict[str, list[int]] = {f"k{key}": [] for key in range(KEYS)}
        failed = {f"k{key}": 0 for key in range(KEYS)}
        grants: list[int] = []
        lock = threading.Lock()
        stop = time.monotonic() + RUN_SECONDS

        def agent(index: int) -> None:
            base = doomed if index % 2 == 0 else survivor
            client = HubClient(base, token=hub.tokens[f"w{index}"], timeout=10)
            key = f"k{index % KEYS}"
            while time.monotonic() < stop:
                try:
                    if index % 4 < 2:  # half the agents lock, on both servers
                        try:
                            lease = client.acquire("res:shared", ttl=5, wait=WAIT_SECONDS)
                        except LockHeld:
                            continue
                        with lock:
                            grants.append(lease.id)
                        lease.release()
                    else:
                        memory = client.update("counter:c", key, lambda c: {**c, "n": c["n"] + 1})
                        with lock:
                            acked[key].append(memory.version)
                except HubError:
                    if index % 4 >= 2:
                        with lock:
                            failed[key] += 1
                    if base == doomed:  # its server is gone: the load balancer would send it elsewhere
                        base = survivor
                        client = HubClient(base, token=hub.tokens[f"w{index}"], timeout=10)

        threads = [threading.Thread(target=agent, args=(i,)) for i in range(AGENTS)]
        for thread in threads:
            thread.start()
        time.sleep(KILL_AT)
        kill_group(doomed_process, 9)
        doomed_process.wait(timeout=10)
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)

        # The dead process's waits end at their deadline (<= WAIT_SECONDS after they began); the sweeper
        # records them as abandoned within a sweep or two after that.
        deadline = time.monotonic() + WAIT_SECONDS + 10
        while (still_open := hub.query("SELECT count(*) FROM locks_lockwait WHERE ended_at IS NULL")[0][0]) > 0:
            assert time.monotonic() < deadline, f"{still_open} LockWait rows still open"
            time.sleep(0.5)

    hub.assert_log_has_no_seq_gap()
    hub.assert_counters_exact("counter:c", acked=acked, failed=failed)
    # Exclusive leases on the shared resource never overlapped (a lease ends at release or expiry).
    leases = hub.query(
        # The lease's own list of resources: its LeaseResource rows go once it is released.
        "SELECT id, fencing_token, acquired_at, least(released_at, expires_at) FROM locks_lease"
        " WHERE resources @> '[\"res:shared\"]'::jsonb ORDER BY acquired_at"
    )
    assert {lease[0] for lease in leases} >= set(grants) and grants
    for (_, token, _, ended), (_, next_token, started, _) in zip(leases, leases[1:], strict=False):
        assert started >= ended, "two exclusive leases overlapped"
        assert next_token > token, "fencing tokens must rise"
