"""The client is a library for agents' own programs: it must import without the server's stack."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import ROOT

BLOCKED = ["django", "celery", "rest_framework", "channels", "daphne", "psycopg", "redis", "mcp"]


def test_the_client_imports_without_django_or_celery():
    # A module set to None in sys.modules cannot be imported: as if it were not installed.
    script = (
        "import sys\n"
        f"for name in {BLOCKED!r}: sys.modules[name] = None\n"
        "import memoryhub.client as c\n"
        "assert c.HubClient and c.AsyncHubClient\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
