"""REST adapters for locks and holds: parse, call the service, shape the answer."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from memoryhub.api.permissions import IsHuman
from memoryhub.api.schema import RESOURCE_PATTERN, errors
from memoryhub.api.serializers import CheckedText, StrictSerializer, validated
from memoryhub.api.views import HubView
from memoryhub.errors import Invalid, NotFound

from . import services
from .models import HOLDER_TOKEN_RE, LockMode
from .selectors import hold_get, hold_to_dict, holds_list, lease_get, lease_to_dict, leases_active, lock_contention


class LockInput(StrictSerializer):
    """The request body as the schema documents it. Not a validator: `services.lock_request` is the
    one (see LockListView.post)."""

    resources = serializers.ListField(
        child=CheckedText(RESOURCE_PATTERN, max_length=600),
        min_length=1,
        max_length=services.MAX_RESOURCES,
    )
    mode = serializers.ChoiceField(choices=LockMode.choices, default=LockMode.EXCLUSIVE)
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=services.MAX_TTL_SECONDS)
    wait_seconds = serializers.FloatField(min_value=0, max_value=settings.MEMORYHUB_MAX_LOCK_WAIT_SECONDS, default=0)
    holder_token = serializers.RegexField(
        HOLDER_TOKEN_RE,
        required=False,
        allow_null=True,
        help_text="To re-enter a lease you hold: the holder_token its acquisition returned. Without it, "
        "a lease of your agent's on these resources is a contender's (409 lock_held, or wait).",
    )


def _holder_proof() -> serializers.RegexField:
    return serializers.RegexField(
        HOLDER_TOKEN_RE,
        required=False,
        trim_whitespace=False,
        help_text="The holder_token the lease's acquisition returned: only the process holding the lease "
        "may extend or release it (403 without it, for a lease granted with one).",
    )


class HeartbeatInput(StrictSerializer):
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=services.MAX_TTL_SECONDS, required=False)
    holder_token = _holder_proof()


class ReasonInput(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ReleaseInput(ReasonInput):
    holder_token = _holder_proof()


class HoldInput(StrictSerializer):
    resource = CheckedText(RESOURCE_PATTERN, max_length=600)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class LeaseOutput(serializers.Serializer):
    id = serializers.IntegerField()
    agent = serializers.CharField()
    resources = serializers.ListField(child=serializers.CharField())
    mode = serializers.CharField()
    fencing_token = serializers.IntegerField()
    ttl_seconds = serializers.IntegerField()
    depth = serializers.IntegerField()
    acquired_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    active = serializers.BooleanField()
    seq = serializers.IntegerField(required=False, allow_null=True)
    holder_token = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="POST locks/ only: the proof of holding this lease, to send when re-entering it. The hub "
        "keeps only its digest; an Idempotency-Key replay returns null.",
    )


class HoldOutput(serializers.Serializer):
    id = serializers.IntegerField()
    resource = serializers.CharField()
    placed_by = serializers.CharField()
    reason = serializers.CharField()
    placed_at = serializers.DateTimeField()
    lifted_at = serializers.DateTimeField(allow_null=True)
    lifted_by = serializers.CharField()
    active = serializers.BooleanField()
    seq = serializers.IntegerField(required=False, help_text="Seq of the event a write produced.")


class HoldPageOutput(serializers.Serializer):
    results = HoldOutput(many=True)


def _lock_fields(request) -> dict:
    """The body's fields, for `services.lock_request` to validate (a JSON object of LockInput's
    fields, the required ones present)."""
    data = request.data
    if type(data) is not dict:
        raise Invalid("the body must be a JSON object", non_field_errors=["expected an object"])
    unknown = sorted(data.keys() - services.LOCK_FIELDS.keys())
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(unknown)}", **{name: ["Unknown field."] for name in unknown})
    missing = [name for name, required in services.LOCK_FIELDS.items() if required and name not in data]
    if missing:
        raise Invalid(
            f"missing fields: {', '.join(missing)}", **{name: ["This field is required."] for name in missing}
        )
    return data


def _release_body(request) -> dict:
    """ReleaseInput's result. The usual bodies (the client's `{"reason": "", "holder_token": ...}`, a
    human's empty one) are read without building a serializer, which costs more than the rest of the
    view."""
    data = request.data
    if type(data) is dict and data.keys() <= {"reason", "holder_token"} and data.get("reason", "") == "":
        token = data.get("holder_token", "")
        if token == "":
            return {"reason": ""}
        if type(token) is str and HOLDER_TOKEN_RE.match(token):
            return {"reason": "", "holder_token": token}
    return validated(ReleaseInput, request)


class LockListView(HubView):
    """POST acquires (all or nothing, optionally waiting); GET lists active leases and waiters."""

    @extend_schema(
        operation_id="locks_list",
        parameters=[
            OpenApiParameter("resource", str, description="leases holding this resource"),
            OpenApiParameter("agent", str, description="leases held by this agent"),
        ],
    )
    def get(self, request):
        params = request.query_params
        return Response(
            leases_active(actor=self.actor, resource=params.get("resource") or None, agent=params.get("agent") or None)
        )

    @extend_schema(request=LockInput, responses={201: LeaseOutput, **errors(423)})
    def post(self, request):
        # With or without an Idempotency-Key: the attempts each in a transaction of their own, the
        # wait between them (services.lock_acquire); the grant's transaction records the key.
        grant = services.lock_acquire(actor=self.actor, **_lock_fields(request))
        body = {
            **lease_to_dict(grant.lease),
            "seq": grant.seq,
            "reentered": grant.reentered,
            "waited_ms": grant.waited_ms,
            "holder_token": grant.holder_token,
        }
        response = Response(body, status=status.HTTP_201_CREATED)
        # The holder token is kept only as a digest (Lease.holder_digest): an Idempotency-Key's
        # record keeps the answer without it (a replay says null).
        response.replay_content = JSONRenderer().render({**body, "holder_token": None})
        return response


class LockContentionView(HubView):
    def get(self, request):
        return Response({"results": lock_contention(actor=self.actor)})


class LockDetailView(HubView):
    @extend_schema(responses=LeaseOutput)
    def get(self, request, lease_id):
        lease = lease_get(actor=self.actor, lease_id=lease_id)
        if lease is None:
            raise NotFound(f"no lease {lease_id}")
        return Response(lease_to_dict(lease))

    @extend_schema(request=ReleaseInput, responses={200: LeaseOutput})
    def delete(self, request, lease_id):
        data = _release_body(request)
        release = services.lock_release(
            actor=self.actor, lease_id=lease_id, reason=data["reason"], holder_token=data.get("holder_token")
        )
        return Response({**lease_to_dict(release.lease), "released": release.released, "seq": release.seq})


class LockHeartbeatView(HubView):
    @extend_schema(request=HeartbeatInput, responses=LeaseOutput)
    def post(self, request, lease_id):
        data = validated(HeartbeatInput, request)
        lease = services.lock_heartbeat(
            actor=self.actor,
            lease_id=lease_id,
            ttl_seconds=data.get("ttl_seconds"),
            holder_token=data.get("holder_token"),
        )
        # A heartbeat is liveness, not a state change: no event, so no seq.
        return Response({**lease_to_dict(lease), "seq": None})


class _HumansWrite:
    """Anyone may read; only humans may write."""

    def get_permissions(self):
        permissions = super().get_permissions()
        if self.request.method not in SAFE_METHODS:
            permissions.append(IsHuman())
        return permissions


class HoldListView(_HumansWrite, HubView):
    @extend_schema(
        operation_id="holds_list",
        parameters=[
            OpenApiParameter("active", bool, description="only holds in place (default true)"),
            OpenApiParameter("resource", str, description="holds covering this resource"),
        ],
        responses=HoldPageOutput,
    )
    def get(self, request):
        active = (request.query_params.get("active") or "true").lower()
        if active not in ("true", "false", "1", "0"):
            raise Invalid("active must be true or false", active=["not a boolean"])
        return Response(
            {
                "results": holds_list(
                    actor=self.actor,
                    active=active in ("true", "1"),
                    resource=request.query_params.get("resource") or None,
                )
            }
        )

    @extend_schema(request=HoldInput, responses={201: HoldOutput})
    def post(self, request):
        data = validated(HoldInput, request)
        hold, seq = services.hold_place(actor=self.actor, resource=data["resource"], reason=data["reason"])
        return Response({**hold_to_dict(hold), "seq": seq}, status=status.HTTP_201_CREATED)


class HoldDetailView(_HumansWrite, HubView):
    @extend_schema(responses=HoldOutput)
    def get(self, request, hold_id):
        hold = hold_get(actor=self.actor, hold_id=hold_id)
        if hold is None:
            raise NotFound(f"no hold {hold_id}")
        return Response(hold_to_dict(hold))

    @extend_schema(request=ReasonInput, responses={200: HoldOutput})
    def delete(self, request, hold_id):
        data = validated(ReasonInput, request)
        hold, seq = services.hold_lift(actor=self.actor, hold_id=hold_id, reason=data["reason"])
        return Response({**hold_to_dict(hold), "seq": seq})
