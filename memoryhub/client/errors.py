"""Typed exceptions for the hub's error shape `{"error": {"code", "message", "details"}}`.

Each class names one `code` of the REST API (SPEC section 3); `error_from_response` picks the class by
code (then by status, for codes this client does not know yet)."""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Any error the hub answered with. `.status`, `.code`, `.message`, `.details` are its error shape."""

    status: int = 0
    code: str = "error"

    def __init__(self, message: str = "", *, status: int | None = None, code: str | None = None, details=None):
        self.message = message or self.code
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details if isinstance(details, dict) else {}
        super().__init__(f"{self.status} {self.code}: {self.message}")

    def as_dict(self) -> dict[str, Any]:
        """The error shape, as the hub sent it (the MCP server returns this to the model)."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details, "status": self.status}}


class TransportError(HubError):
    """The hub could not be reached (or kept failing with 5xx) after every retry."""

    code = "unreachable"


class Invalid(HubError):
    status, code = 400, "invalid"


class MalformedJSON(Invalid):
    code = "malformed_json"


class Unauthenticated(HubError):
    status, code = 401, "unauthenticated"


class Forbidden(HubError):
    status, code = 403, "forbidden"


class FieldNotOwned(Forbidden):
    """`.fields` maps each refused field to the roles that own it: send them a `handoff` entry."""

    code = "field_not_owned"

    @property
    def fields(self) -> dict[str, list[str]]:
        return self.details.get("fields") or {}


class AgentSuspended(Forbidden):
    code = "agent_suspended"


class NotFound(HubError):
    status, code = 404, "not_found"


class Conflict(HubError):
    """409 conflict: e.g. a request with the same Idempotency-Key still in progress."""

    status, code = 409, "conflict"


class LockHeld(Conflict):
    """`.holders`: who holds the resources (each `{resource, agent, lease, expires_at, ...}`)."""

    code = "lock_held"

    @property
    def holders(self) -> list[dict[str, Any]]:
        return self.details.get("holders") or []


class AlreadyClaimed(Conflict):
    code = "already_claimed"


class StaleFencingToken(Conflict):
    code = "stale_fencing_token"


class LeaseExpired(Conflict):
    code = "lease_expired"


class VersionConflict(HubError):
    """A stale `If-Match` (or a create-only write of a present memory). `.current` is the memory as it
    is now (a `Memory`), or None when it is absent."""

    status, code = 412, "version_conflict"

    @property
    def current(self):
        from .models import Memory

        raw = self.details.get("current")
        return Memory.from_dict(raw) if isinstance(raw, dict) else None


class TooLarge(HubError):
    status, code = 413, "too_large"


class IdempotencyKeyReused(HubError):
    status, code = 422, "idempotency_key_reused"


class Held(HubError):
    """A human hold, or a write to a `locked` namespace without a current lock."""

    status, code = 423, "held"


class PreconditionRequired(HubError):
    status, code = 428, "precondition_required"


class Throttled(HubError):
    status, code = 429, "throttled"

    @property
    def retry_after(self) -> float | None:
        value = self.details.get("retry_after_seconds")
        return float(value) if value is not None else None


class ServerError(HubError):
    status, code = 500, "server_error"


_BY_CODE: dict[str, type[HubError]] = {
    cls.code: cls
    for cls in (
        Invalid,
        MalformedJSON,
        Unauthenticated,
        Forbidden,
        FieldNotOwned,
        AgentSuspended,
        NotFound,
        Conflict,
        LockHeld,
        AlreadyClaimed,
        StaleFencingToken,
        LeaseExpired,
        VersionConflict,
        TooLarge,
        IdempotencyKeyReused,
        Held,
        PreconditionRequired,
        Throttled,
        ServerError,
    )
}
_BY_STATUS: dict[int, type[HubError]] = {
    400: Invalid,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: VersionConflict,
    413: TooLarge,
    422: IdempotencyKeyReused,
    423: Held,
    428: PreconditionRequired,
    429: Throttled,
}


def error_from_response(status: int, body: Any) -> HubError:
    """The typed exception for an error response (`body` the decoded JSON, or anything else)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        cls = _BY_STATUS.get(status, ServerError if status >= 500 else HubError)
        return cls(str(body)[:500] if body else f"HTTP {status}", status=status)
    code = str(error.get("code") or "error")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else HubError)
    return cls(str(error.get("message") or code), status=status, code=code, details=error.get("details"))


def close_code_error(code: int | None, reason: str = "") -> HubError | None:
    """The exception for a websocket close code that must not be retried (4401, 4403, 4400)."""
    if code == 4401:
        return Unauthenticated(reason or "the websocket refused the token", status=401)
    if code == 4403:
        return Forbidden(reason or "not allowed to read those namespaces (or the agent is suspended)", status=403)
    if code == 4400:
        return Invalid(reason or "the websocket refused the request", status=400)
    return None
