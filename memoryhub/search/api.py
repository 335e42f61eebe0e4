from __future__ import annotations

import json

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from memoryhub.api.params import int_param
from memoryhub.api.schema import NAMESPACE_GLOB_PATTERN, NOT_BLANK_PATTERN, integer, json_query, text
from memoryhub.api.views import HubView
from memoryhub.errors import Invalid
from memoryhub.memories.models import MemoryKind

from .selectors import FILTER_OPERATORS, MAX_FILTER_FIELDS, MAX_LIMIT, MAX_Q_CHARS, MODES, memories_search

MAX_FILTER_CHARS = 4096

# The filter as memoryhub.search.selectors._filter_conditions reads it.
_ORDERED = {"anyOf": [{"type": "string"}, {"type": "number"}]}
_EQUAL = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
FILTER = {
    "type": "object",
    "maxProperties": MAX_FILTER_FIELDS,
    "propertyNames": {"pattern": r"^(?!.*__)[A-Za-z_][A-Za-z0-9_.@-]{0,99}$"},
    "additionalProperties": {
        "anyOf": [
            _EQUAL,
            {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {op: _EQUAL if op in ("$eq", "$ne") else _ORDERED for op in FILTER_OPERATORS},
            },
        ]
    },
}


class SearchResultOutput(serializers.Serializer):
    namespace = serializers.CharField()
    key = serializers.CharField()
    version = serializers.IntegerField()
    kind = serializers.CharField()
    updated_by = serializers.CharField()
    updated_at = serializers.DateTimeField()
    score = serializers.FloatField(
        help_text="higher is better; lexical: ts_rank_cd/bm25, semantic: cosine, hybrid: RRF"
    )
    content = serializers.JSONField()
    snippet = serializers.CharField(help_text="HTML-escaped text with <mark> around lexical matches")


class SearchOutput(serializers.Serializer):
    mode = serializers.CharField()
    results = SearchResultOutput(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    incomplete = serializers.BooleanField(help_text="true when semantic results may be missing memories")
    notes = serializers.ListField(child=serializers.CharField())


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse_filter(raw: str | None):
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_FILTER_CHARS:
        raise Invalid(f"filter is longer than {MAX_FILTER_CHARS} characters", filter=["too long"])
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise Invalid(f"filter is not a JSON object: {exc}", filter=["malformed JSON"])


def _parse_fresh(raw: str | None) -> bool:
    if raw in (None, "", "false"):
        return False
    if raw == "true":
        return True
    raise Invalid("fresh must be true or false", fresh=["true or false"])


class SearchView(HubView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                text(NOT_BLANK_PATTERN, max_length=MAX_Q_CHARS),
                required=True,
                description="the text to search for",
            ),
            OpenApiParameter("mode", str, enum=list(MODES), description="hybrid (default), lexical or semantic"),
            OpenApiParameter(
                "namespace",
                {"type": "array", "items": text(NAMESPACE_GLOB_PATTERN, max_length=255)},
                description="a namespace or glob (repeatable)",
            ),
            OpenApiParameter("kind", str, enum=MemoryKind.values),
            OpenApiParameter("updated_by", str),
            json_query(
                "filter",
                FILTER,
                description='JSON object on top-level content fields: {"status": "open", "n": {"$gt": 3}} '
                "($eq $ne $gt $gte $lt $lte)",
            ),
            OpenApiParameter("limit", integer(1, MAX_LIMIT), description="default 10"),
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter("fresh", bool, description="true = leave stale semantic memories out"),
        ],
        responses=SearchOutput,
    )
    def get(self, request):
        params = request.query_params
        page = memories_search(
            actor=self.actor,
            q=params.get("q", ""),
            mode=params.get("mode") or "hybrid",
            namespaces=[namespace for namespace in params.getlist("namespace") if namespace] or None,
            kind=params.get("kind") or None,
            updated_by=params.get("updated_by") or None,
            filter=_parse_filter(params.get("filter")),
            limit=int_param(params, "limit", 10, low=1, high=MAX_LIMIT),
            cursor=params.get("cursor") or None,
            fresh=_parse_fresh(params.get("fresh")),
        )
        return Response(page.as_dict())
