from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from memoryhub.api.permissions import IsHuman
from memoryhub.api.serializers import StrictSerializer, validated
from memoryhub.api.views import HubView
from memoryhub.errors import NotFound
from memoryhub.times import iso
from policies.selectors import policies_for

from .models import Agent
from .services import agent_set_status, agent_touch


def agent_to_dict(agent: Agent) -> dict:
    return {
        "id": agent.id,
        "name": agent.name,
        "role": agent.role,
        "status": agent.status,
        "last_seen_at": iso(agent.last_seen_at),
    }


class MeView(HubView):
    def get(self, request):
        actor = self.actor
        policies = policies_for(actor)
        if actor.is_human:
            return Response(
                {
                    "id": actor.id,
                    "name": actor.id,
                    "role": "human",
                    "status": "active",
                    "kind": "human",
                    "reads": ["*"],
                    "writes": ["*"],
                }
            )

        def patterns(which: str) -> list[str]:
            out = []
            for rule in policies.namespaces:
                roles = rule.readers if which == "read" else rule.writers
                if "*" in roles or actor.role in roles:
                    out.append(rule.pattern)
                elif "self" in roles and rule.pattern.endswith("*"):
                    out.append(rule.pattern[:-1] + actor.id)
            return out

        return Response(
            {
                **agent_to_dict(request.user),
                "kind": "agent",
                "reads": patterns("read"),
                "writes": patterns("write"),
            }
        )


class AgentListView(HubView):
    def get(self, request):
        queryset = Agent.objects.all()
        if role := request.query_params.get("role"):
            queryset = queryset.filter(role=role)
        if status := request.query_params.get("status"):
            queryset = queryset.filter(status=status)
        return Response({"results": [agent_to_dict(agent) for agent in queryset]})


class HeartbeatView(HubView):
    def post(self, request):
        if isinstance(request.user, Agent):
            agent_touch(agent=request.user)
            return Response(agent_to_dict(request.user))
        return Response({"id": self.actor.id, "kind": "human"})


class StatusInput(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class _AgentStatusView(HubView):
    permission_classes = [IsHuman]
    target_status = ""

    @extend_schema(request=StatusInput)
    def post(self, request, agent_id):
        data = validated(StatusInput, request)
        if not Agent.objects.filter(id=agent_id).exists():
            raise NotFound(f"no agent {agent_id!r}")
        agent, seq = agent_set_status(
            actor=self.actor,
            agent_id=agent_id,
            status=self.target_status,
            reason=data["reason"],
        )
        return Response({**agent_to_dict(agent), "seq": seq or None})


class AgentSuspendView(_AgentStatusView):
    """The kill switch: the agent's next request is refused; its locks and claims are freed."""

    target_status = "suspended"


class AgentResumeView(_AgentStatusView):
    target_status = "active"
