"""Django's SQLite backend, with the file's write lock queued in the process.

SQLite lets one writer in at a time, and a writer that finds the file locked sleeps and retries (its
busy handler: 1, 2, 5, 10 ... 100 ms naps), so under load a waiter often sleeps on past the moment the
lock came free. Threads of one process queue here instead, on a lock taken before BEGIN IMMEDIATE and
released at COMMIT or ROLLBACK: the next one goes in as soon as the last one is out. Other processes
on the same file still meet SQLite's own lock, which is what keeps them safe."""

from __future__ import annotations

import threading

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def write_lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_write_lock = False

    def _write_lock(self) -> threading.Lock:
        return write_lock(str(self.settings_dict["NAME"]))

    def _start_transaction_under_autocommit(self) -> None:
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        if not self._write_lock().acquire(timeout=timeout):
            raise OperationalError("database is locked (waited for this process's writers)")
        self._holds_write_lock = True
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # not in django-stubs
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            self._write_lock().release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_write_lock()
