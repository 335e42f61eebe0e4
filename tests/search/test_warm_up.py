"""A server process loads its embedder as it starts, not in its first search."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import time
from memoryhub.search import embedders
import {module}
deadline = time.monotonic() + 60
while not embedders._loaded and time.monotonic() < deadline:
    time.sleep(0.05)
assert embedders._loaded, "no embedder was loaded"
print("loaded", list(embedders._loaded.values())[0].name)
"""


def test_the_wsgi_and_asgi_applications_load_the_embedder_as_they_start(tmp_path):
    for module in ("memoryhub.wsgi", "memoryhub.asgi"):
        env_code = CHECK.format(module=module)
        result = subprocess.run(
            [sys.executable, "-c", env_code],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                "DJANGO_SETTINGS_MODULE": "memoryhub.settings",
                "PATH": "/usr/bin:/bin",
                "DATABASE_URL": "",
                "MEMORYHUB_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
                "HOME": str(tmp_path),
            },
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "loaded minilm-l6-v2" in result.stdout
