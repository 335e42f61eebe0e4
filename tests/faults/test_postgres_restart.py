"""PostgreSQL restarted (a crash: `pg_ctl -m immediate`) while 16 agents increment counters with the
client's `update()`: every acknowledged increment is in the final state and in the log exactly once,
the log has no seq gap, and the hub serves again within 5 s of PostgreSQL being back, without being
restarted itself."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from memoryhub.client import HubClient
from memoryhub.client.errors import HubError
from tests.faults.conftest import hub_server

AGENTS = 16
POLICIES = {"namespaces": [{"pattern": "counter:*", "readers": ["*"], "writers": ["*"]}]}
RUN_SECONDS = 9.0
RESTART_AT = 3.0


def _increment(content: dict) -> dict:
    return {**content, "n": content["n"] + 1}


@pytest.mark.parametrize("keys", [1, 16], ids=["one key", "16 keys"])
def test_a_postgres_restart_under_load_loses_and_repeats_nothing(make_hub, keys):
    agents = {f"w{i}": "worker" for i in range(AGENTS)}
    hub = make_hub(policies=POLICIES, agents=agents)
    with hub_server(hub, kind="gunicorn") as (base, process):
        setup = HubClient(base, token=hub.tokens["w0"])
        for key in range(keys):
            setup.put("counter:c", f"k{key}", {"n": 0})

        acked: dict[str, list[int]] = {f"k{key}": [] for key in range(keys)}
        failed: dict[str, int] = {f"k{key}": 0 for key in range(keys)}
        lock = threading.Lock()
        stop = time.monotonic() + RUN_SECONDS

        def agent(index: int) -> None:
            key = f"k{index % keys}"
            client = HubClient(base, token=hub.tokens[f"w{index}"], timeout=10)
            while time.monotonic() < stop:
                try:
                    memory = client.update("counter:c", key, _increment)
                except HubError:
                    with lock:
                        failed[key] += 1
                    time.sleep(0.05)
                    continue
                with lock:
                    acked[key].append(memory.version)

        threads = [threading.Thread(target=agent, args=(i,)) for i in range(AGENTS)]
        for thread in threads:
            thread.start()
        time.sleep(RESTART_AT)
        hub.cluster.stop("immediate")
        time.sleep(1.0)  # down for a second: requests meanwhile get 503 and the client backs off
        asked = time.monotonic()
        down_answer = httpx.get(f"{base}/api/v1/memories/counter:c/k0/", headers=_auth(hub), timeout=10)
        answered_in = time.monotonic() - asked
        hub.cluster.start()
        back = time.monotonic()
        while True:
            response = httpx.get(f"{base}/api/v1/memories/counter:c/k0/", headers=_auth(hub), timeout=10)
            if response.status_code == 200:
                break
            assert time.monotonic() - back < 5, f"not serving 5 s after PostgreSQL came back: {response.text}"
            time.sleep(0.1)
        recovered_in = time.monotonic() - back
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)

    assert down_answer.status_code == 503, down_answer.text
    assert down_answer.json()["error"]["code"] == "unavailable"
    assert int(down_answer.headers["Retry-After"]) >= 1
    assert answered_in < 5, f"the 503 took {answered_in:.1f} s"
    assert recovered_in < 5
    hub.assert_log_has_no_seq_gap()
    hub.assert_counters_exact("counter:c", acked=acked, failed=failed)
    assert sum(len(v) for v in acked.values()) > AGENTS  # the load ran on both sides of the restart


def _auth(hub) -> dict[str, str]:
    return {"Authorization": f"Bearer {hub.tokens['w0']}"}
