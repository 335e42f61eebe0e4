"""Every /api/ error in one shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from memoryhub.errors import HubError

log = logging.getLogger(__name__)

DRF_CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ParseError, "malformed_json"),
    (exceptions.ValidationError, "invalid"),
    (exceptions.AuthenticationFailed, "unauthenticated"),
    (exceptions.NotAuthenticated, "unauthenticated"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
]


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def _message(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail:
        return _message(detail[0])
    if isinstance(detail, dict) and detail:
        field, value = next(iter(detail.items()))
        return f"{field}: {_message(value)}"
    return "Invalid input."


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, HubError):
        return Response(exc.as_dict(), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django answers 500, in our shape (memoryhub.urls handler500)

    headers = {}
    # DRF's APIView.handle_exception sets `auth_header` on 401-bound exceptions; APIException itself
    # declares no such attribute.
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    details: Any = {}
    code = next((code for cls, code in DRF_CODES if isinstance(exc, cls)), "error")
    if getattr(exc, "default_code", "") == "agent_suspended":
        code = "agent_suspended"
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = _message(exc.detail)
    elif isinstance(exc, exceptions.Throttled):
        wait = exc.wait  # type: ignore[attr-defined]  # set by Throttled.__init__; missing from the stubs
        if wait is not None:
            headers["Retry-After"] = str(int(wait) + 1)
            details = {"retry_after_seconds": round(wait, 3)}
        message = "Too many requests."
    else:
        message = _message(exc.detail)
    if exc.status_code == 401:
        code = "unauthenticated"
    return Response(error_body(code, message, details), status=exc.status_code, headers=headers)


def json_404(request, exception=None):
    return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)


def json_500(request):
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)
