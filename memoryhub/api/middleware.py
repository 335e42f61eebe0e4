"""What every request is checked for before a view reads it, and what an outage looks like to a client.

- A NUL character (`%00`) in the path or a query parameter, or in a header, would reach a filter or
  a column and fail there (PostgreSQL refuses NUL in text): 400 naming the parameter. So does a query
  string that is not UTF-8.
- A body over DATA_UPLOAD_MAX_MEMORY_SIZE: 413 `too_large` before it is read (Django's own answer is
  an HTML 400 page, raised from wherever the body is first read; that case is mapped here too).
- The database unreachable (refused, timed out, pool exhausted, a connection lost mid-request): 503
  `unavailable` with Retry-After, not a 500.

On /api/ the answers are in the error shape; elsewhere (dashboard, admin) plain text.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from .errors import error_body

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


def _answer(request: HttpRequest, status: int, code: str, message: str, details: dict | None = None) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return JsonResponse(error_body(code, message, details), status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _utf8(query_string: str) -> bool:
    try:
        raw = query_string.encode("latin-1")  # WSGI: the bytes as sent
    except UnicodeEncodeError:
        return True  # ASGI: already decoded as UTF-8
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def input_refusal(request: HttpRequest) -> HttpResponse | None:
    """The 4xx for a request that must not reach a view, or None."""
    meta = request.META
    if "\x00" in request.path_info:
        return _answer(request, 400, "invalid", "The path contains a NUL character.", {"path": ["NUL character"]})
    query = meta.get("QUERY_STRING", "")
    if query and ("%" in query or not query.isascii()):
        if not _utf8(query):
            return _answer(request, 400, "invalid", "The query string is not valid UTF-8.", {"query": ["not UTF-8"]})
        if "%00" in query or "\x00" in query:
            names = sorted(
                {name for name, values in request.GET.lists() if "\x00" in name or "\x00" in "".join(values)}
            )
            return _answer(
                request,
                400,
                "invalid",
                f"Query parameter {', '.join(names)} contains a NUL character.",
                {name: ["NUL character"] for name in names},
            )
    for name, value in meta.items():
        if name.startswith("HTTP_") and "\x00" in value:
            header = name[5:].replace("_", "-").title()
            return _answer(
                request, 400, "invalid", f"Header {header} contains a NUL character.", {header: ["NUL character"]}
            )
    length = meta.get("CONTENT_LENGTH")
    if length and length.isascii() and length.isdigit() and int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return too_large(request)
    return None


def too_large(request: HttpRequest) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return _answer(request, 413, "too_large", f"The body is larger than {limit} bytes.", {"max_body_bytes": limit})


def unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    log.warning("database unavailable: %s: %s", exc.__class__.__name__, exc)
    response = _answer(
        request,
        503,
        "unavailable",
        "The database is unavailable; try again shortly.",
        {"retry_after_seconds": RETRY_AFTER_SECONDS},
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class InputGuardMiddleware:
    """Refuses what no view should see (see the module docstring) and turns an outage into a 503."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = input_refusal(request)
        if refusal is not None:
            return refusal
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return too_large(request)
        # Refused, timed out, a pool wait exhausted, a connection lost mid-request (PostgreSQL), the
        # database locked past the busy timeout (SQLite): each says "not now", not a bug. A bad
        # statement (IntegrityError, DataError) stays a 500.
        if isinstance(exception, (OperationalError, InterfaceError)):
            return unavailable(request, exception)
        return None
