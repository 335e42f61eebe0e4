from rest_framework.permissions import BasePermission

from memoryhub.context import Caller


def _caller(request) -> Caller | None:
    return request.auth if isinstance(request.auth, Caller) else None


class IsHubCaller(BasePermission):
    """An agent with a token, or a staff user with a session (non-staff users are not overseers)."""

    message = "Only agents and staff users may use the API."

    def has_permission(self, request, view):
        caller = _caller(request)
        return caller is not None and (caller.is_agent or bool(request.user.is_staff))


class IsHuman(BasePermission):
    """Staff users only: the kill switch, holds, force-release."""

    message = "Only humans (staff users) may do this."

    def has_permission(self, request, view):
        caller = _caller(request)
        return caller is not None and caller.is_human and bool(request.user.is_staff)
