from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from memoryhub.api.headers import parse_fencing_token, parse_if_none_match, parse_version_header
from memoryhub.api.params import BIGINT_MAX, INT_MAX, int_param, parse_int, string_param, time_param
from memoryhub.api.schema import KEY_PATTERN, NAMESPACE_PATTERN, errors, integer, no_content, text
from memoryhub.api.serializers import CheckedText, JSONObjectField, StrictSerializer, validated
from memoryhub.api.views import HubView
from memoryhub.errors import Invalid
from memoryhub.events.selectors import events_with_key

from . import services
from .models import MemoryKind
from .selectors import (
    HISTORY_PAGE,
    MAX_HISTORY_PAGE,
    MAX_OFFSET,
    MAX_PAGE,
    memories_list,
    memory_get,
    memory_history,
    memory_to_dict,
    memory_written,
)


class MemoryRef(StrictSerializer):
    namespace = CheckedText(NAMESPACE_PATTERN, max_length=255)
    key = CheckedText(KEY_PATTERN, max_length=255)


class MemoryPutInput(StrictSerializer):
    """Working memory expires: with ttl_seconds, or (only under task:<id>) with its task."""

    schema_rules = {
        "if": {"properties": {"kind": {"const": "working"}}, "required": ["kind"]},
        "then": {"required": ["ttl_seconds"], "properties": {"ttl_seconds": {"type": "integer"}}},
    }

    content = JSONObjectField()
    valid_until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="The fact stops holding then (future, with a timezone)."
    )
    supersedes = MemoryRef(
        many=True, required=False, help_text="Memories this one replaces: kept, out of default reads and search."
    )
    kind = serializers.ChoiceField(choices=MemoryKind.choices, required=False)
    ttl_seconds = serializers.IntegerField(
        min_value=1, max_value=services.MAX_TTL_SECONDS, required=False, allow_null=True
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class MemoryPatchInput(StrictSerializer):
    content = JSONObjectField(help_text="A JSON merge patch (RFC 7396) of the content.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class MemoryDeleteInput(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class VerifyInput(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RevertInput(StrictSerializer):
    version = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class MemoryOutput(serializers.Serializer):
    namespace = serializers.CharField()
    key = serializers.CharField()
    kind = serializers.CharField()
    content = serializers.JSONField(
        required=False, help_text="Absent in answers to a writer that may not read the namespace."
    )
    version = serializers.IntegerField()
    created_by = serializers.CharField()
    updated_by = serializers.CharField()
    updated_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(required=False, help_text="Absent, as content is.")
    verified_at = serializers.DateTimeField(allow_null=True, help_text="Set by every write and by verify.")
    verified_by = serializers.CharField()
    stale = serializers.BooleanField(help_text="Semantic memory not verified for its namespace's stale_after_seconds.")
    valid_until = serializers.DateTimeField(allow_null=True)
    superseded_by = serializers.CharField(allow_null=True, help_text="<namespace>/<key> of what replaced it.")
    superseded_at = serializers.DateTimeField(allow_null=True)
    archived_at = serializers.DateTimeField(allow_null=True, help_text="An episode summarized.")
    derived_from = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="A summary's source episodes."
    )
    seq = serializers.IntegerField(required=False, help_text="Seq of the event this write produced.")


# A write to a memory: a lock or a hold in the way, a stale fencing token, another version.
CONDITIONAL_WRITE_ERRORS = errors(409, 412, 423, 428)

# As memoryhub/api/headers.py parses them (empty = absent). A version has at most 9 digits here: a
# 10-digit one may pass the column's range (a 400).
WRITE_HEADERS = [
    OpenApiParameter(
        "If-Match",
        text(r'^((W/)?"[0-9]{1,9}"|[0-9]{1,9})?$'),
        OpenApiParameter.HEADER,
        description='"<version>" the write is based on',
    ),
    OpenApiParameter(
        "X-Fencing-Token", text(r"^[0-9]{0,18}$"), OpenApiParameter.HEADER, description="for locked namespaces"
    ),
    OpenApiParameter("Idempotency-Key", text(max_length=255), OpenApiParameter.HEADER),
]
CREATE_HEADER = OpenApiParameter(
    "If-None-Match", str, OpenApiParameter.HEADER, enum=["*"], description="* = create only if absent"
)


def include_invalid(params) -> bool:
    """`include=invalid`; any other value is refused (a typo must not silently show less)."""
    value = params.get("include")
    if value in (None, ""):
        return False
    if value != "invalid":
        raise Invalid("include must be 'invalid'", include=["the one value is 'invalid'"])
    return True


def _written(result, code=status.HTTP_200_OK) -> Response:
    # A writer that may not read the namespace gets the new version and metadata, no content: a
    # PATCH's result holds what other writers wrote.
    body = {**memory_to_dict(result.memory, readable=result.readable), "seq": result.event.seq}
    if result.memory.deleted_at is not None and result.readable:
        body["content"] = None
    return Response(body, status=code, headers={"ETag": f'"{result.memory.version}"'})


class _WriteView(HubView):
    """A memory write: a repeat whose first request's answer was lost gets it rebuilt from the log."""

    def rebuild(self, request, *, since):
        namespace, key = self.kwargs["namespace"], self.kwargs["key"]
        events = events_with_key(actor=self.actor, key=self.actor.idempotency_key, since=since)
        body = memory_written(actor=self.actor, namespace=namespace, key=key, key_events=events)
        if body is None:
            return None
        code = status.HTTP_201_CREATED if body.pop("created") and request.method == "PUT" else status.HTTP_200_OK
        return Response(body, status=code, headers={"ETag": f'"{body["version"]}"'})


class MemoryPageOutput(serializers.Serializer):
    results = MemoryOutput(many=True)
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    next = serializers.CharField(allow_null=True, help_text="cursor of the next page; null on the last")


class VersionOutput(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True)
    type = serializers.CharField()
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.DictField()
    reason = serializers.CharField()
    content = serializers.JSONField(allow_null=True, required=False, help_text="absent for a verification")
    diff = serializers.JSONField(allow_null=True, required=False, help_text="absent for a verification")


class HistoryOutput(serializers.Serializer):
    namespace = serializers.CharField()
    key = serializers.CharField()
    versions = VersionOutput(many=True, help_text="newest first")
    next = serializers.CharField(allow_null=True, help_text="cursor of the next (older) page; null on the last")


class MemoryListView(HubView):
    @extend_schema(
        operation_id="memories_list",
        parameters=[
            OpenApiParameter("namespace", str, description="a namespace or a glob such as customer:*"),
            OpenApiParameter("kind", str),
            OpenApiParameter("q", str, description="text in the key or content"),
            OpenApiParameter("updated_by", str),
            OpenApiParameter(
                "task", integer(0, BIGINT_MAX), description="a task's working memories (namespace task:<id> and below)"
            ),
            OpenApiParameter(
                "include", str, enum=["invalid"], description="invalid = also superseded, past-validity and archived"
            ),
            OpenApiParameter(
                "limit", integer(-BIGINT_MAX, BIGINT_MAX), description=f"at most {MAX_PAGE} (others are clamped)"
            ),
            OpenApiParameter("cursor", text(max_length=2000), description="`next` of the previous page"),
            OpenApiParameter(
                "offset",
                integer(-BIGINT_MAX, MAX_OFFSET),
                description=f"deprecated, at most {MAX_OFFSET}: use `cursor`",
                deprecated=True,
            ),
        ],
        responses=MemoryPageOutput,
    )
    def get(self, request):
        params = request.query_params
        # Out-of-range values are clamped (as before), but only ASCII digits are integers.
        limit = min(max(int_param(params, "limit", 100, low=-BIGINT_MAX), 1), MAX_PAGE)
        offset = max(int_param(params, "offset", 0, low=-BIGINT_MAX, high=MAX_OFFSET), 0)
        results, following = memories_list(
            actor=self.actor,
            namespace=params.get("namespace") or None,
            kind=params.get("kind") or None,
            q=params.get("q") or None,
            updated_by=params.get("updated_by") or None,
            task=parse_int(params["task"], name="task") if params.get("task") else None,
            include_invalid=include_invalid(params),
            limit=limit,
            offset=offset,
            cursor=string_param(params, "cursor"),
        )
        return Response({"results": results, "limit": limit, "offset": offset, "next": following})


class MemoryDetailView(_WriteView):
    @extend_schema(
        parameters=[
            OpenApiParameter("version", integer(0, INT_MAX)),
            OpenApiParameter("as_of", OpenApiTypes.DATETIME, description="ISO 8601 time with a timezone"),
            OpenApiParameter(
                "include", str, enum=["invalid"], description="invalid = also superseded, past-validity or archived"
            ),
        ],
        responses={200: MemoryOutput, 304: no_content("If-None-Match holds the current version's ETag")},
    )
    def get(self, request, namespace, key):
        version = request.query_params.get("version") or None
        as_of = request.query_params.get("as_of") or None
        memory = memory_get(
            actor=self.actor,
            namespace=namespace,
            key=key,
            version=parse_int(version, name="version", high=INT_MAX) if version is not None else None,
            as_of=time_param(request.query_params, "as_of"),
            include_invalid=include_invalid(request.query_params),
        )
        etag = f'"{memory["version"]}"'
        if version is None and as_of is None and request.headers.get("If-None-Match") == etag:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(memory, headers={"ETag": etag})

    @extend_schema(
        request=MemoryPutInput,
        responses={200: MemoryOutput, 201: MemoryOutput, **CONDITIONAL_WRITE_ERRORS},
        parameters=[*WRITE_HEADERS, CREATE_HEADER],
    )
    def put(self, request, namespace, key):
        data = validated(MemoryPutInput, request)
        result = services.memory_put(
            actor=self.actor,
            namespace=namespace,
            key=key,
            content=data["content"],
            kind=data.get("kind"),
            ttl_seconds=data.get("ttl_seconds"),
            reason=data["reason"],
            valid_until=data.get("valid_until"),
            supersedes=[(ref["namespace"], ref["key"]) for ref in data.get("supersedes", [])],
            if_match=parse_version_header(request.headers.get("If-Match"), "If-Match"),
            if_none_match=parse_if_none_match(request.headers.get("If-None-Match")),
            fencing_token=parse_fencing_token(request.headers.get("X-Fencing-Token")),
        )
        created = result.event.type == "memory.created"
        return _written(result, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        request=MemoryPatchInput, responses={200: MemoryOutput, **CONDITIONAL_WRITE_ERRORS}, parameters=WRITE_HEADERS
    )
    def patch(self, request, namespace, key):
        data = validated(MemoryPatchInput, request)
        return _written(
            services.memory_patch(
                actor=self.actor,
                namespace=namespace,
                key=key,
                patch=data["content"],
                reason=data["reason"],
                if_match=parse_version_header(request.headers.get("If-Match"), "If-Match"),
                fencing_token=parse_fencing_token(request.headers.get("X-Fencing-Token")),
            )
        )

    @extend_schema(
        request=MemoryDeleteInput, responses={200: MemoryOutput, **CONDITIONAL_WRITE_ERRORS}, parameters=WRITE_HEADERS
    )
    def delete(self, request, namespace, key):
        data = validated(MemoryDeleteInput, request)
        return _written(
            services.memory_delete(
                actor=self.actor,
                namespace=namespace,
                key=key,
                reason=data["reason"],
                if_match=parse_version_header(request.headers.get("If-Match"), "If-Match"),
                fencing_token=parse_fencing_token(request.headers.get("X-Fencing-Token")),
            )
        )


class MemoryHistoryView(HubView):
    @extend_schema(
        parameters=[
            OpenApiParameter("limit", integer(1, MAX_HISTORY_PAGE), description="versions per page"),
            OpenApiParameter("cursor", text(max_length=2000), description="`next` of the previous page"),
        ],
        responses=HistoryOutput,
    )
    def get(self, request, namespace, key):
        params = request.query_params
        versions, following = memory_history(
            actor=self.actor,
            namespace=namespace,
            key=key,
            limit=int_param(params, "limit", HISTORY_PAGE, low=1, high=MAX_HISTORY_PAGE),
            cursor=string_param(params, "cursor"),
        )
        return Response({"namespace": namespace, "key": key, "versions": versions, "next": following})


class MemoryRevertView(_WriteView):
    @extend_schema(
        request=RevertInput, responses={200: MemoryOutput, **CONDITIONAL_WRITE_ERRORS}, parameters=WRITE_HEADERS
    )
    def post(self, request, namespace, key):
        data = validated(RevertInput, request)
        return _written(
            services.memory_revert(
                actor=self.actor,
                namespace=namespace,
                key=key,
                version=data["version"],
                reason=data["reason"],
                if_match=parse_version_header(request.headers.get("If-Match"), "If-Match"),
                fencing_token=parse_fencing_token(request.headers.get("X-Fencing-Token")),
            )
        )


class MemoryVerifyView(HubView):
    @extend_schema(request=VerifyInput, responses={200: MemoryOutput, **errors(423)})
    def post(self, request, namespace, key):
        """Re-confirm the memory as still true: verified_at/verified_by move, no new version."""
        data = validated(VerifyInput, request)
        return _written(services.memory_verify(actor=self.actor, namespace=namespace, key=key, reason=data["reason"]))
