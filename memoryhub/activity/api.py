from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from memoryhub.api.params import int_param
from memoryhub.api.schema import RESOURCE, integer
from memoryhub.api.views import HubView
from memoryhub.errors import Invalid

from .selectors import MAX_WINDOW_SECONDS, activity_for


class ActivityView(HubView):
    """Before acting on a resource: who else acted there lately, and should I defer?"""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "resource",
                RESOURCE,
                required=True,
                description="a namespace, <namespace>/<key> or lock name",
            ),
            OpenApiParameter(
                "window_seconds", integer(1, MAX_WINDOW_SECONDS), description="how far back to look (default 300)"
            ),
        ]
    )
    def get(self, request):
        resource = request.query_params.get("resource")
        if not resource:
            raise Invalid("resource is required", resource=["This field is required."])
        window = int_param(request.query_params, "window_seconds", 300, low=1, high=MAX_WINDOW_SECONDS)
        return Response(activity_for(actor=self.actor, resource=resource, window_seconds=window))
