"""REST adapters for tasks: parse, call the service, shape the answer."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from memoryhub.api.params import int_param, string_param
from memoryhub.api.permissions import IsHuman
from memoryhub.api.schema import ROLE_PATTERN, integer, no_content, text
from memoryhub.api.serializers import AnyJSONField, CheckedText, StrictSerializer, validated
from memoryhub.api.views import HubView
from memoryhub.errors import Invalid, NotFound

from . import services
from .models import TaskStatus
from .selectors import MAX_OFFSET, task_get, task_to_dict, tasks_list


class TaskCreateInput(StrictSerializer):
    role = CheckedText(ROLE_PATTERN, max_length=100)
    kind = serializers.CharField(max_length=100)
    payload = AnyJSONField(required=False, allow_null=True, default=dict)
    max_attempts = serializers.IntegerField(min_value=1, max_value=services.MAX_ATTEMPTS_LIMIT, default=3)
    priority = serializers.IntegerField(min_value=-1_000_000, max_value=1_000_000, default=0)
    idempotency_key = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class TaskClaimInput(StrictSerializer):
    role = CheckedText(ROLE_PATTERN, max_length=100, required=False)
    kinds = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=services.MAX_KINDS
    )
    ttl_seconds = serializers.IntegerField(
        min_value=1, max_value=services.MAX_CLAIM_TTL_SECONDS, default=services.DEFAULT_CLAIM_TTL_SECONDS
    )


class TaskHeartbeatInput(StrictSerializer):
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=services.MAX_CLAIM_TTL_SECONDS, required=False)


class TaskCompleteInput(StrictSerializer):
    result = AnyJSONField(required=False, allow_null=True, default=None)


class TaskFailInput(StrictSerializer):
    error = serializers.CharField(required=False, allow_blank=True, max_length=10_000, default="")
    retry = serializers.BooleanField(required=False, default=False)


class ReasonInput(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class TaskOutput(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.CharField()
    kind = serializers.CharField()
    payload = AnyJSONField(allow_null=True)
    status = serializers.ChoiceField(choices=TaskStatus.choices)
    priority = serializers.IntegerField()
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    claimed_by = serializers.CharField(allow_null=True)
    claimed_at = serializers.DateTimeField(allow_null=True)
    claim_expires_at = serializers.DateTimeField(allow_null=True)
    result = AnyJSONField(allow_null=True)
    error = serializers.CharField()
    created_by = serializers.CharField()
    idempotency_key = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    completed_by = serializers.CharField()


class TaskWrittenOutput(TaskOutput):
    seq = serializers.IntegerField(
        allow_null=True, help_text="Seq of the event this write produced; null for a heartbeat."
    )
    created = serializers.BooleanField(
        required=False, help_text="POST tasks/: false when idempotency_key found the task"
    )
    replayed = serializers.BooleanField(required=False, help_text="complete: true when it was already completed so")


class TaskPageOutput(serializers.Serializer):
    results = TaskOutput(many=True)
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    next = serializers.CharField(allow_null=True, help_text="cursor of the next page; null on the last")


# What a DRF CharField would change or refuse: surrounding whitespace (trimmed), NUL and lone surrogates.
_NOT_PLAIN = re.compile(r"^\s|\s$|[\x00\ud800-\udfff]")


def _plain(value: Any, max_length: int) -> bool:
    """A string a CharField(max_length) would return unchanged."""
    return type(value) is str and 0 < len(value) <= max_length and not _NOT_PLAIN.search(value)


_CLAIM_FIELDS = TaskClaimInput._declared_fields


def _claim_body(request) -> dict:
    """What TaskClaimInput would return, for a body already in final form, without building a
    serializer (it costs more CPU than the rest of the view); anything else goes through it, for its
    coercions and field errors."""
    data = request.data
    if type(data) is dict and data.keys() <= _CLAIM_FIELDS.keys():
        ttl = data.get("ttl_seconds", services.DEFAULT_CLAIM_TTL_SECONDS)
        role, kinds = data.get("role", "x"), data.get("kinds", [])
        if (
            type(ttl) is int
            and 1 <= ttl <= services.MAX_CLAIM_TTL_SECONDS
            and _plain(role, 100)
            and type(kinds) is list
            and len(kinds) <= services.MAX_KINDS
            and all(_plain(kind, 100) for kind in kinds)
        ):
            return {name: data[name] for name in ("role", "kinds") if name in data} | {"ttl_seconds": ttl}
    return validated(TaskClaimInput, request)


def _complete_body(request) -> dict:
    """TaskCompleteInput's result: any JSON `result`. A parsed JSON object is taken as is."""
    data = request.data
    if type(data) is dict and data.keys() <= {"result"}:
        return {"result": data.get("result")}
    return validated(TaskCompleteInput, request)


def _answer(result: services.TaskResult, code=status.HTTP_200_OK, **extra) -> Response:
    return Response({**task_to_dict(result.task), "seq": result.seq, **extra}, status=code)


class TaskListView(HubView):
    @extend_schema(
        operation_id="tasks_list",
        parameters=[
            OpenApiParameter("status", str, enum=TaskStatus.values),
            OpenApiParameter("role", str),
            OpenApiParameter("kind", str),
            OpenApiParameter("limit", integer(1, 500)),
            OpenApiParameter("cursor", text(max_length=2000), description="`next` of the previous page"),
            OpenApiParameter("offset", integer(0, MAX_OFFSET), description="deprecated: use `cursor`", deprecated=True),
        ],
        responses=TaskPageOutput,
    )
    def get(self, request):
        params = request.query_params
        task_status = params.get("status") or None
        if task_status and task_status not in TaskStatus.values:
            raise Invalid(f"status must be one of {TaskStatus.values}", status=["invalid choice"])
        limit = int_param(params, "limit", 100, low=1, high=500)
        offset = int_param(params, "offset", 0, high=MAX_OFFSET)
        results, following = tasks_list(
            actor=self.actor,
            status=task_status,
            role=params.get("role") or None,
            kind=params.get("kind") or None,
            limit=limit,
            offset=offset,
            cursor=string_param(params, "cursor"),
        )
        return Response({"results": results, "limit": limit, "offset": offset, "next": following})

    @extend_schema(
        request=TaskCreateInput,
        responses={
            201: TaskWrittenOutput,
            200: OpenApiResponse(TaskWrittenOutput, description="idempotency_key's task"),
        },
    )
    def post(self, request):
        data = validated(TaskCreateInput, request)
        result = services.task_create(actor=self.actor, **data)
        return _answer(
            result, status.HTTP_201_CREATED if result.created else status.HTTP_200_OK, created=result.created
        )


class TaskClaimView(HubView):
    @extend_schema(request=TaskClaimInput, responses={200: TaskWrittenOutput, 204: no_content("nothing to claim")})
    def post(self, request):
        data = _claim_body(request)
        result = services.task_claim(actor=self.actor, **data)
        if result is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return _answer(result)


class TaskDetailView(HubView):
    @extend_schema(responses=TaskOutput)
    def get(self, request, task_id):
        task = task_get(actor=self.actor, task_id=task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        return Response(task_to_dict(task))


class TaskHeartbeatView(HubView):
    @extend_schema(request=TaskHeartbeatInput, responses=TaskWrittenOutput)
    def post(self, request, task_id):
        data = validated(TaskHeartbeatInput, request)
        task = services.task_heartbeat(actor=self.actor, task_id=task_id, ttl_seconds=data.get("ttl_seconds"))
        # A heartbeat is liveness, not a state change: no event, so no seq.
        return Response({**task_to_dict(task), "seq": None})


class TaskCompleteView(HubView):
    @extend_schema(request=TaskCompleteInput, responses=TaskWrittenOutput)
    def post(self, request, task_id):
        data = _complete_body(request)
        result = services.task_complete(actor=self.actor, task_id=task_id, result=data["result"])
        return _answer(result, replayed=result.replayed)


class TaskFailView(HubView):
    @extend_schema(request=TaskFailInput, responses=TaskWrittenOutput)
    def post(self, request, task_id):
        data = validated(TaskFailInput, request)
        return _answer(services.task_fail(actor=self.actor, task_id=task_id, **data))


class TaskRequeueView(HubView):
    permission_classes = [IsHuman]

    @extend_schema(request=ReasonInput, responses=TaskWrittenOutput)
    def post(self, request, task_id):
        data = validated(ReasonInput, request)
        return _answer(services.task_requeue(actor=self.actor, task_id=task_id, reason=data["reason"]))


class TaskCancelView(HubView):
    permission_classes = [IsHuman]

    @extend_schema(request=ReasonInput, responses=TaskWrittenOutput)
    def post(self, request, task_id):
        data = validated(ReasonInput, request)
        return _answer(services.task_cancel(actor=self.actor, task_id=task_id, reason=data["reason"]))
