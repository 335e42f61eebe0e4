"""One structured JSON log line per request, on the `memoryhub.request` logger:

    {"request_id": "...", "method": "PUT", "route": "api/v1/memories/<str:namespace>/<str:key>/",
     "path": "/api/v1/memories/customer:acme/profile/", "status": 200, "duration_ms": 12.3,
     "agent": "sales-1", "seqs": [812], "replayed": false}

`X-Request-ID` is taken from the request when it is a plain token (so a load balancer's id follows the
request through) or generated, and returned on the response. `seqs` are the events the request wrote,
noted when they are published after commit. The same middleware feeds the request-duration metric.
This runs on every request: it reads nothing from the database and formats one line.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from django.utils.functional import SimpleLazyObject, empty

from memoryhub import metrics

log = logging.getLogger("memoryhub.request")

_written: ContextVar[list[int] | None] = ContextVar("memoryhub_written_seqs", default=None)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def note_written(events: Iterable[Any]) -> None:
    """Called as events are published: the current request (if any) wrote them."""
    seqs = _written.get()
    if seqs is not None:
        seqs.extend(event.seq for event in events)


def _caller(request) -> str | None:
    user = request.__dict__.get("user")
    if user is None:
        return None
    if isinstance(user, SimpleLazyObject):
        if user._wrapped is empty:
            return None  # nobody looked at the session user: a log line is no reason to load it
        user = user._wrapped
    if not getattr(user, "is_authenticated", False):
        return None
    role = getattr(user, "role", None)
    if role is not None and not user.is_staff:
        return str(user.id)  # an agent (its id is its name)
    return f"human:{user.get_username()}"


class RequestLogMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        seqs: list[int] = []
        token = _written.set(seqs)
        try:
            response = self.get_response(request)
        finally:
            _written.reset(token)
        duration = time.perf_counter() - started
        response["X-Request-ID"] = request_id
        match = request.resolver_match
        route = match.route if match is not None else "unmatched"
        status = response.status_code
        metrics.request_duration.labels(route, request.method, status).observe(duration)
        replayed = response.get("Idempotent-Replayed") == "true"
        if replayed:
            metrics.idempotency_replays.inc()
        if log.isEnabledFor(logging.INFO):
            log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": request.method,
                        "route": route,
                        "path": request.path,
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                        "agent": _caller(request),
                        "seqs": seqs,
                        "replayed": replayed,
                    },
                    ensure_ascii=False,
                )
            )
        return response
