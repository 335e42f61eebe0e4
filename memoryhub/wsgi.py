"""WSGI entry point: production serves the REST API and dashboard here (gunicorn), websockets on daphne."""

import os
import sys

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryhub.settings")
# A WSGI worker's threads live as long as the worker, so each keeps its own PostgreSQL connection
# (CONN_MAX_AGE) rather than taking one from the pool for every request, which ASGI needs (a new thread
# per request) and which cost a sync worker a fifth of its memory reads/s (measured).
os.environ.setdefault("DATABASE_POOL", "false")
application = get_wsgi_application()

from memoryhub.search.embedders import warm_up  # noqa: E402

warm_up()  # the embedding model loads while the worker starts, not in its first search

# In a threaded worker (gunicorn gthread; production runs sync workers, see the README) a request
# thread whose query has returned waits for the GIL while the other threads of its worker run Python:
# up to Python's default 5 ms, with its transaction's row locks (and the log's sequence row) held
# meanwhile. 1 ms measured better throughput on a hot key and a lower p99 there.
_switch_ms = float(os.environ.get("MEMORYHUB_GIL_SWITCH_MS", "1") or 0)
if _switch_ms > 0:
    sys.setswitchinterval(_switch_ms / 1000)
