"""REST adapters for locks and holds: parse, call the service, shape the answer."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from memoryhub.api.permissions import IsHuman
from memoryhub.api.serializers import StrictSerializer
from memoryhub.api.views import HubView
from memoryhub.errors import Invalid, NotFound

from . import services
from .models import LockMode
from .names import RESOURCE_RE
from .selectors import hold_get, hold_to_dict, holds_list, lease_get, lease_to_dict, leases_active, lock_contention
from .waiting import notifier


class LockInput(StrictSerializer):
    resources = serializers.ListField(
        child=serializers.CharField(max_length=600), min_length=1, max_length=services.MAX_RESOURCES
    )
    mode = serializers.ChoiceField(choices=LockMode.choices, default=LockMode.EXCLUSIVE)
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=services.MAX_TTL_SECONDS)
    wait_seconds = serializers.FloatField(min_value=0, max_value=settings.MEMORYHUB_MAX_LOCK_WAIT_SECONDS, default=0)


class HeartbeatInput(StrictSerializer):
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=services.MAX_TTL_SECONDS, required=False)


class ReasonInput(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class HoldInput(StrictSerializer):
    resource = serializers.CharField(max_length=600)
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


def _body(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data if request.data is not None else {})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


_LOCK_FIELDS = LockInput._declared_fields
_MAX_WAIT = settings.MEMORYHUB_MAX_LOCK_WAIT_SECONDS  # LockInput's bound, read at the same import


def _lock_body(request) -> dict:
    """What LockInput would return, for the body every client sends (a JSON object whose values are
    already in their final form: names that pass `RESOURCE_RE`, an int ttl...) without building a
    serializer, which costs more CPU than the rest of the view. Anything else goes through LockInput,
    for its coercions and its field errors."""
    data = request.data
    if type(data) is dict and data.keys() <= _LOCK_FIELDS.keys():
        resources = data.get("resources")
        mode = data.get("mode", LockMode.EXCLUSIVE)
        ttl, wait = data.get("ttl_seconds"), data.get("wait_seconds", 0)
        if (
            type(resources) is list
            and 1 <= len(resources) <= services.MAX_RESOURCES
            and all(type(name) is str and RESOURCE_RE.match(name) for name in resources)
            and type(mode) in (str, LockMode)
            and mode in LockMode.values
            and type(ttl) is int
            and 1 <= ttl <= services.MAX_TTL_SECONDS
            and type(wait) in (int, float)
            and 0 <= wait <= _MAX_WAIT
        ):
            return {
                "resources": resources,
                "mode": mode,
                "ttl_seconds": ttl,
                "wait_seconds": float(wait) if "wait_seconds" in data else wait,
            }
    return _body(LockInput, request)


def _reason_body(request) -> dict:
    """ReasonInput's result; an empty body (the usual release) needs no serializer."""
    if type(request.data) is dict and not request.data:
        return {"reason": ""}
    return _body(ReasonInput, request)


class LockListView(HubView):
    """POST acquires (all or nothing, optionally waiting); GET lists active leases and waiters."""

    _pending: services.LockRequest | None = None
    _subscription = None
    _retry = False

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST" or not request.headers.get("Idempotency-Key"):
            return super().dispatch(request, *args, **kwargs)
        # With an Idempotency-Key, HubView runs the request in one transaction (claiming the key).
        # Waiting inside it would keep the database locked for the releaser too (SQLite) or keep
        # the key row locked for seconds (PostgreSQL). So each pass tries once; a refusal with time
        # left is not stored under the key, and the wait happens here, between transactions.
        try:
            while True:
                self._retry = False
                response = super().dispatch(request, *args, **kwargs)
                if not self._retry or self._pending is None:
                    return response
                timeout = self._pending.next_wait()
                if timeout is not None and self._subscription is not None:
                    self._subscription.wait(timeout)
        finally:
            if self._subscription is not None:
                notifier.unsubscribe(self._subscription)

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

    @extend_schema(request=LockInput, responses={201: LeaseOutput})
    def post(self, request):
        data = _lock_body(request)
        if not connection.in_atomic_block:
            grant = services.lock_acquire(actor=self.actor, **data)
        else:
            grant = self._attempt_once(data)
        body = {
            **lease_to_dict(grant.lease),
            "seq": grant.seq,
            "reentered": grant.reentered,
            "waited_ms": grant.waited_ms,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    def _attempt_once(self, data: dict) -> services.LockGrant:
        if self._pending is None:
            self._pending = services.lock_request(actor=self.actor, **data)
            if self._pending.wait_seconds:
                self._subscription = notifier.subscribe(self._pending.names)
        pending = self._pending
        final = pending.next_wait() is None
        if self._subscription is not None:
            self._subscription.clear()  # before the attempt: a release committed after it wakes us
        grant = services.lock_attempt(pending, final=final)
        if grant is None:
            self._retry = not final
            raise pending.refusal()
        return grant


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

    @extend_schema(request=ReasonInput, responses=LeaseOutput)
    def delete(self, request, lease_id):
        data = _reason_body(request)
        release = services.lock_release(actor=self.actor, lease_id=lease_id, reason=data["reason"])
        return Response({**lease_to_dict(release.lease), "released": release.released, "seq": release.seq})


class LockHeartbeatView(HubView):
    @extend_schema(request=HeartbeatInput, responses=LeaseOutput)
    def post(self, request, lease_id):
        data = _body(HeartbeatInput, request)
        lease = services.lock_heartbeat(actor=self.actor, lease_id=lease_id, ttl_seconds=data.get("ttl_seconds"))
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
    )
    def get(self, request):
        active = request.query_params.get("active", "true").lower()
        if active not in ("true", "false", "1", "0"):
            raise Invalid("active must be true or false", active=["not a boolean"])
        return Response(
            {
                "results": holds_list(
                    active=active in ("true", "1"), resource=request.query_params.get("resource") or None
                )
            }
        )

    @extend_schema(request=HoldInput)
    def post(self, request):
        data = _body(HoldInput, request)
        hold, seq = services.hold_place(actor=self.actor, resource=data["resource"], reason=data["reason"])
        return Response({**hold_to_dict(hold), "seq": seq}, status=status.HTTP_201_CREATED)


class HoldDetailView(_HumansWrite, HubView):
    def get(self, request, hold_id):
        hold = hold_get(hold_id=hold_id)
        if hold is None:
            raise NotFound(f"no hold {hold_id}")
        return Response(hold_to_dict(hold))

    @extend_schema(request=ReasonInput)
    def delete(self, request, hold_id):
        data = _body(ReasonInput, request)
        hold, seq = services.hold_lift(actor=self.actor, hold_id=hold_id, reason=data["reason"])
        return Response({**hold_to_dict(hold), "seq": seq})
