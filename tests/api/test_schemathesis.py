"""The published OpenAPI schema is the API's contract: schemathesis, with every check, against a real
server on the test database, finds nothing (no 5xx, every answer's status, headers and body as
documented, schema-valid requests accepted, schema-invalid ones refused). Once as an agent (every
operation), once as a staff user (the operations only humans may use).

Bounded: a fixed number of examples per operation and a fixed seed (MEMORYHUB_SCHEMATHESIS_SEED
overrides it, MEMORYHUB_SCHEMATHESIS_EXAMPLES the count), lock waits at most a second.
schemathesis.toml and schemathesis_hooks.py say what the schema cannot, and why."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from memoryhub.actors import SYSTEM
from memoryhub.locks.models import Hold
from memoryhub.tasks.services import task_create
from policies.services import policies_apply
from tests.conftest import TEST_POLICIES
from tests.servers import ROOT, server

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

ST = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = os.environ.get("MEMORYHUB_SCHEMATHESIS_EXAMPLES", "20")
SEED = os.environ.get("MEMORYHUB_SCHEMATHESIS_SEED", "20261203")
# The generated names mostly fall under no policy of the suite's: everyone may read and write the
# rest, so generated writes get past the policy to the checks behind it.
POLICIES = {
    **TEST_POLICIES,
    "namespaces": [*TEST_POLICIES["namespaces"], {"pattern": "*", "readers": ["*"], "writers": ["*"]}],
}
HUMANS_ONLY = r"^(agents_(suspend|resume)_create|holds_(create|retrieve|destroy)|tasks_(requeue|cancel)_create)$"


def schemathesis(base: str, workdir: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(ST),
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/api/v1/schema/",
            "--url",
            base,
            # Every check runs by default. `--checks all` would also override the operations' settings
            # in schemathesis.toml (use_after_free off for holds and locks): the command line wins.
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "2",
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            "--no-color",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        # In workdir: schemathesis keeps a cache of its findings (.schemathesis/) where it runs.
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks"},
    )


def test_the_api_does_what_its_schema_says(make_agent, django_user_model, tmp_path):
    policies_apply(actor=SYSTEM, document=POLICIES)
    agent = make_agent("worker-1", "worker")
    make_agent("peer-1", "peer")
    task_create(actor=agent.actor, role="worker", kind="build", payload={"n": 1})
    browser = Client()
    browser.force_login(django_user_model.objects.create_user("overseer", is_staff=True))
    csrf = secrets.token_hex(16)  # Django takes a 32-character secret, unmasked, in cookie and header
    session = f"sessionid={browser.cookies['sessionid'].value}; csrftoken={csrf}"

    with server(env={"MEMORYHUB_INPROCESS_SWEEPER": "false", "MEMORYHUB_MAX_LOCK_WAIT_SECONDS": "1"}) as base:
        as_agent = schemathesis(base, tmp_path, "-H", f"Authorization: Bearer {agent.token}")
        as_human = schemathesis(
            base,
            tmp_path,
            "-H",
            f"Cookie: {session}",
            "-H",
            f"X-CSRFToken: {csrf}",
            "--include-operation-id-regex",
            HUMANS_ONLY,
            # The session comes as a raw Cookie header, which schemathesis does not know to be the
            # credentials: it takes the Authorization header it makes up (of another scheme, which
            # the hub rightly ignores) for them. The agent's run makes this check.
            "--exclude-checks",
            "ignored_auth",
        )
    assert as_agent.returncode == 0, as_agent.stdout + as_agent.stderr
    assert as_human.returncode == 0, as_human.stdout + as_human.stderr
    assert Hold.objects.filter(placed_by="human:overseer").exists()  # the session was taken
