"""Waking lock waiters when resources are freed, without polling the database.

Every release or expiry calls `announce_release(names)` inside its transaction: after commit it wakes
the waiters of this process whose resources it names, and on PostgreSQL it also sends a NOTIFY
(delivered at commit, never for a rolled-back release). A listener thread per process, running only
while someone here waits, LISTENs on that channel and wakes local waiters, so a release in another
server process wakes them too. Waiters still re-check at least every `SAFETY_RECHECK_SECONDS`, the
safety net for a notification lost with its connection (and the only cross-process signal on SQLite,
whose writers share one file and rarely run several server processes).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable

from django.db import connection, transaction

log = logging.getLogger(__name__)

CHANNEL = "memoryhub_lock_release"
SAFETY_RECHECK_SECONDS = 1.0
# NOTIFY payloads are limited to 8000 bytes; a longer list is sent as "*" (wake everyone).
MAX_PAYLOAD = 7000
_LISTEN_POLL_SECONDS = 0.25


class Subscription:
    """One waiter's interest in some resources. `clear()` before each attempt, `wait()` after a
    failed one: a release committed in between sets the event, so no wake-up is lost."""

    def __init__(self, names: Iterable[str] | None) -> None:
        self.names: frozenset[str] | None = frozenset(names) if names is not None else None
        self._event = threading.Event()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(max(0.0, min(timeout, SAFETY_RECHECK_SECONDS)))

    def wake_if(self, names: frozenset[str] | None) -> None:
        if names is None or self.names is None or not self.names.isdisjoint(names):
            self._event.set()


class _Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self.listening = threading.Event()  # set while the LISTEN connection is up (tests wait on it)

    def subscribe(self, names: Iterable[str] | None = None) -> Subscription:
        subscription = Subscription(names)
        with self._lock:
            self._subscriptions.add(subscription)
        if connection.vendor == "postgresql":
            self._ensure_listener()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def notify(self, names: frozenset[str] | None) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.wake_if(names)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    # --- PostgreSQL LISTEN ---------------------------------------------------------------------------
    def _ensure_listener(self) -> None:
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._stop.clear()
            params = _listen_params()
            self._listener = threading.Thread(
                target=self._listen, args=(params,), name="memoryhub-lock-listener", daemon=True
            )
            self._listener.start()

    def _listen(self, params: dict) -> None:
        import psycopg

        while True:
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while True:
                        for note in conn.notifies(timeout=_LISTEN_POLL_SECONDS):
                            self.notify(_parse_payload(note.payload))
                        # Runs only while someone in this process waits: an idle process holds no
                        # connection (and a test database can be dropped once its tests are done).
                        # Decided under the lock that `subscribe` takes, so no waiter is left unheard.
                        if self._exit_if_idle():
                            return
            except Exception:  # waiters fall back to their bounded re-check meanwhile
                self.listening.clear()
                log.warning("lock release listener failed; reconnecting", exc_info=True)
                self._stop.wait(SAFETY_RECHECK_SECONDS)
                if self._exit_if_idle():
                    return

    def _exit_if_idle(self) -> bool:
        with self._lock:
            if self._subscriptions and not self._stop.is_set():
                return False
            self.listening.clear()
            if self._listener is threading.current_thread():
                self._listener = None
            return True

    def stop_listener(self, timeout: float = 5.0) -> None:
        """Stop the listener thread and wait for it (tests, before their database is dropped)."""
        self._stop.set()
        listener = self._listener
        if listener is not None:
            listener.join(timeout)


def _listen_params() -> dict:
    """The default database's connection parameters, for a plain psycopg connection of our own."""
    settings_dict = connection.settings_dict
    django_only = {"isolation_level", "pool", "server_side_binding", "assume_role"}
    params = {key: value for key, value in settings_dict.get("OPTIONS", {}).items() if key not in django_only}
    params["dbname"] = settings_dict["NAME"]
    for key, name in (("USER", "user"), ("PASSWORD", "password"), ("HOST", "host"), ("PORT", "port")):
        if settings_dict.get(key):
            params[name] = settings_dict[key]
    return params


def _parse_payload(payload: str) -> frozenset[str] | None:
    if payload == "*":
        return None
    try:
        return frozenset(json.loads(payload))
    except (ValueError, TypeError):
        return None


notifier = _Notifier()


def announce_release(names: Iterable[str] | None, *, notify_sent: bool = False) -> None:
    """Call inside the transaction that frees `names` (None: anything, e.g. a hold placed, which
    waiters must hear about to give up): waiters wake once it commits. `notify_sent`: the caller's
    own statement already ran `pg_notify` (see `NOTIFY_SQL`), only this process's waiters are left."""
    freed = frozenset(names) if names is not None else None
    if freed is not None and not freed:
        return
    if connection.vendor == "postgresql" and not notify_sent:
        payload = json.dumps(sorted(freed)) if freed is not None else "*"
        with connection.cursor() as cursor:
            # Delivered by PostgreSQL at commit, to every listening process (this one included).
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload if len(payload) <= MAX_PAYLOAD else "*"])
    transaction.on_commit(lambda: notifier.notify(freed))


# The NOTIFY for a lease's resources (a JSON list in a `resources` column) as an expression a statement
# can carry, saving its own round trip: same channel and payload as `announce_release` sends.
NOTIFY_SQL = (
    f"pg_notify('{CHANNEL}', CASE WHEN octet_length(resources::text) <= {MAX_PAYLOAD}"
    " THEN resources::text ELSE '*' END)"
)
