from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from memoryhub.api.params import BIGINT_MAX, int_param
from memoryhub.api.schema import integer
from memoryhub.api.views import HubView

from .selectors import events_visible, last_seq


class EventListView(HubView):
    @extend_schema(
        parameters=[
            OpenApiParameter("since", integer(0, BIGINT_MAX), description="return events with seq greater than this"),
            OpenApiParameter("namespace", str, description="a namespace or a glob"),
            OpenApiParameter("resource", str),
            OpenApiParameter("actor", str, description="actor id"),
            OpenApiParameter("type", str, description="an event type, or a prefix ending in * (memory.*)"),
            OpenApiParameter("limit", integer(1, 1000)),
        ]
    )
    def get(self, request):
        params = request.query_params
        results, cursor = events_visible(
            actor=self.actor,
            since=int_param(params, "since", 0),
            namespace=params.get("namespace") or None,
            resource=params.get("resource") or None,
            actor_id=params.get("actor") or None,
            type=params.get("type") or None,
            limit=int_param(params, "limit", 100, low=1, high=1000),
        )
        return Response({"results": results, "next_since": cursor, "last_seq": last_seq()})
