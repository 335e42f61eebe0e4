"""Domain errors raised by services. Adapters turn them into the spec's error shape:
REST via memoryhub.api.errors, the dashboard into messages, the websocket into close codes."""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    status = 400
    code = "invalid"
    default_message = "Invalid request."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Invalid(HubError):
    status, code, default_message = 400, "invalid", "Invalid input."


class Unauthenticated(HubError):
    status, code, default_message = 401, "unauthenticated", "Authentication credentials were not provided."


class Forbidden(HubError):
    status, code, default_message = 403, "forbidden", "The policy does not allow this."


class FieldNotOwned(HubError):
    status, code, default_message = 403, "field_not_owned", "Some changed fields are owned by another role."


class AgentSuspended(HubError):
    status, code, default_message = 403, "agent_suspended", "This agent is suspended."


class NotFound(HubError):
    status, code, default_message = 404, "not_found", "Not found."


class LockHeld(HubError):
    status, code, default_message = 409, "lock_held", "The resource is locked by another agent."


class AlreadyClaimed(HubError):
    status, code, default_message = 409, "already_claimed", "The task is not claimed by you."


class StaleFencingToken(HubError):
    status, code, default_message = 409, "stale_fencing_token", "A newer fencing token has already been used."


class Conflict(HubError):
    status, code, default_message = 409, "conflict", "The request conflicts with the current state."


class VersionConflict(HubError):
    status, code, default_message = 412, "version_conflict", "The memory has changed since that version."


class TooLarge(HubError):
    status, code, default_message = 413, "too_large", "Content is larger than this namespace allows."


class IdempotencyKeyReused(HubError):
    status, code = 422, "idempotency_key_reused"
    default_message = "This Idempotency-Key was used with a different request."


class Held(HubError):
    status, code, default_message = 423, "held", "The resource is held."


class PreconditionRequired(HubError):
    status, code = 428, "precondition_required"
    default_message = 'Updating a memory in an optimistic namespace needs If-Match: "<version>".'


class LeaseExpired(HubError):
    status, code, default_message = (
        409,
        "lease_expired",
        "The lease has lapsed or was released; acquire the lock again.",
    )
