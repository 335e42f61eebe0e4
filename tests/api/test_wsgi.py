"""The WSGI entry point's thread switch interval (MEMORYHUB_GIL_SWITCH_MS)."""

import importlib
import sys

import pytest


@pytest.mark.parametrize(("setting", "expected"), [(None, 0.001), ("2.5", 0.0025), ("0", None)])
def test_wsgi_workers_switch_threads_as_configured(monkeypatch, setting, expected):
    import memoryhub.wsgi

    before = sys.getswitchinterval()
    if setting is None:
        monkeypatch.delenv("MEMORYHUB_GIL_SWITCH_MS", raising=False)
    else:
        monkeypatch.setenv("MEMORYHUB_GIL_SWITCH_MS", setting)
    sys.setswitchinterval(0.005)
    try:
        importlib.reload(memoryhub.wsgi)
        assert sys.getswitchinterval() == pytest.approx(expected if expected is not None else 0.005)
    finally:
        sys.setswitchinterval(before)


def _database_settings(entry_point: str, **env: str) -> str:
    """The default database's pool and CONN_MAX_AGE as a fresh process importing `entry_point` sees
    them (settings only: nothing connects)."""
    import os
    import subprocess

    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_POOL"}
    environment.update(DATABASE_URL="postgres://memoryhub@127.0.0.1:5432/memoryhub", **env)
    read = (
        f"import {entry_point}; from django.conf import settings; d = settings.DATABASES['default'];"
        " print('pool' in d.get('OPTIONS', {}), d['CONN_MAX_AGE'])"
    )
    result = subprocess.run([sys.executable, "-c", read], env=environment, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_wsgi_workers_keep_a_connection_per_thread_and_asgi_uses_the_pool():
    assert _database_settings("memoryhub.wsgi") == "False 60"
    assert _database_settings("memoryhub.asgi") == "True 0"
    assert _database_settings("memoryhub.wsgi", DATABASE_POOL="true") == "True 0"  # an explicit choice stands
