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
