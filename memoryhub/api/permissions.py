from rest_framework.permissions import BasePermission

from memoryhub.agents.models import Agent


def is_hub_caller(user) -> bool:
    return isinstance(user, Agent) or bool(user and user.is_authenticated and user.is_staff)


class IsHubCaller(BasePermission):
    """An agent with a token, or a staff user with a session (non-staff users are not overseers)."""

    message = "Only agents and staff users may use the API."

    def has_permission(self, request, view):
        return is_hub_caller(request.user)


class IsHuman(BasePermission):
    """Staff users only: the kill switch, holds, force-release."""

    message = "Only humans (staff users) may do this."

    def has_permission(self, request, view):
        user = request.user
        return not isinstance(user, Agent) and bool(user and user.is_authenticated and user.is_staff)
