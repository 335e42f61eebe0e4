"""OpenAPI: the published schema is the API's contract (tests/api/test_schemathesis.py checks it).

- Bearer tokens and staff sessions as security schemes.
- Every operation documents the errors it can answer, in the spec's error shape: the ones any
  operation can (`COMMON_ERRORS`, plus 404 where the path names something and the writes' own), and
  the ones a view adds with `errors(...)` in its `extend_schema(responses=...)`.
- Input serializers that refuse unknown keys (StrictSerializer) say so (`additionalProperties: false`);
  a text field that may not be blank says that whitespace alone is blank (DRF trims it); rules across
  fields are a serializer's `schema_rules` (JSON Schema keywords: oneOf, if/then).
- Path parameters carry the patterns and lengths the services check (`PATH_PARAMETERS`); query
  parameters their ranges (`integer`). An optional query parameter left empty is one left out
  (`allowEmptyValue`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_parameter_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from .serializers import StrictSerializer

# The patterns below are the services' own regexes (memories/content.py, agents/models.py,
# locks/names.py) in JSON Schema's (ECMA 262) spelling: `^...$` anchors the whole value there, as
# `\A...\Z` does in Python (where `$` would also match before a final newline).
NAMESPACE_PATTERN = r"^[A-Za-z0-9_.@-]+(:[A-Za-z0-9_.@-]+)*$"
NAMESPACE_GLOB_PATTERN = r"^[A-Za-z0-9_.@*-]+(:[A-Za-z0-9_.@*-]+)*$"
KEY_PATTERN = r"^[A-Za-z0-9_.:@-]+$"
AGENT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
RESOURCE_PATTERN = r"^[A-Za-z0-9_.:@/-]{1,600}$"
ROLE_PATTERN = AGENT_ID_PATTERN
CONTEXT_TYPE_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
# Not blank once DRF has trimmed it: a character that Python's str.strip() keeps, spelled out, as
# JSON Schema's `\s` is not Python's (\x1c-\x1f and \x85 are whitespace only to Python).
NOT_BLANK_PATTERN = r"[^\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def text(pattern: str | None = None, *, max_length: int | None = None, min_length: int | None = None) -> dict:
    """A string schema with the constraints the API checks."""
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    if max_length is not None:
        schema["maxLength"] = max_length
    if min_length is not None:
        schema["minLength"] = min_length
    return schema


def integer(low: int, high: int) -> dict:
    """An integer schema within [low, high], as memoryhub.api.params.parse_int checks it."""
    return {"type": "integer", "minimum": low, "maximum": high}


NAMESPACE = text(NAMESPACE_PATTERN, max_length=255)
KEY = text(KEY_PATTERN, max_length=255)
AGENT_ID = text(AGENT_ID_PATTERN, max_length=100)
RESOURCE = text(RESOURCE_PATTERN, max_length=600)


def json_query(name: str, schema: dict, description: str = "") -> OpenApiParameter:
    """A query parameter whose value is JSON text matching `schema` (OpenAPI's `content` form)."""
    return OpenApiParameter(name, str, description=description, extensions={JSON_CONTENT: schema})


JSON_CONTENT = "x-json-content"  # taken out of the parameter by HubAutoSchema._get_parameters

PATH_PARAMETERS = {"namespace": NAMESPACE, "key": KEY, "agent_id": AGENT_ID}


class ErrorBody(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable: invalid, forbidden, version_conflict, ...")
    message = serializers.CharField()
    details = serializers.DictField(help_text="per field, or what the code needs (current state, retry_after...)")


class ErrorOutput(serializers.Serializer):
    error = ErrorBody()


ERROR_DESCRIPTIONS = {
    400: "invalid input (the field is named in details)",
    401: "no or bad credentials",
    403: "the policy, the agent's status or the caller's kind does not allow it",
    404: "no such thing, or not visible to the caller",
    409: "a conflict: lock held, task not claimed by the caller, Idempotency-Key in use ...",
    412: "If-Match names another version (details hold the current state)",
    413: "the body or the content is too large",
    415: "the body is not JSON",
    422: "the Idempotency-Key was used with another request",
    423: "the resource is held by a human",
    428: "the namespace needs If-Match",
    429: "rate limited (Retry-After)",
    503: "a dependency (the database) is unavailable (Retry-After)",
}

# Every operation: input checks (query parameters, headers), authentication, suspension and the
# policy, the rate limit, the database.
COMMON_ERRORS = (400, 401, 403, 429, 503)
# Every write: a body (size, media type), an Idempotency-Key (in use: 409; other request: 422).
WRITE_ERRORS = (409, 413, 415, 422)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The error answers of `codes`, for an `extend_schema(responses={...})`."""
    return {code: OpenApiResponse(ErrorOutput, description=ERROR_DESCRIPTIONS[code]) for code in codes}


def no_content(description: str) -> OpenApiResponse:
    return OpenApiResponse(None, description=description)


class HubAutoSchema(AutoSchema):
    def _get_serializer(self):
        if hasattr(self.view, "get_serializer") or hasattr(self.view, "serializer_class"):
            return super()._get_serializer()
        return None

    def get_request_serializer(self):
        return self._get_serializer()

    def get_response_serializers(self):
        return self._get_serializer() or OpenApiTypes.OBJECT

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = [*COMMON_ERRORS]
        if "{" in self.path:
            codes.append(404)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes.extend(WRITE_ERRORS)
        for code, response in errors(*codes).items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(response, str(code), direction=direction)
        return dict(sorted(responses.items()))

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        cls = serializer if isinstance(serializer, type) else type(serializer)
        if cls.__doc__ is None:
            schema.pop("description", None)  # a base class's docstring says nothing about this one
        if issubclass(cls, StrictSerializer):
            schema["additionalProperties"] = False
        schema.update(getattr(cls, "schema_rules", {}))
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        for field_schema in schema.get("properties", {}).values():
            # OAS 3.1's nullable any-JSON comes out as oneOf [{}, null], which null matches twice.
            if field_schema.get("oneOf") == [{}, {"type": "null"}]:
                del field_schema["oneOf"]
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        if getattr(field, "schema_pattern", None):
            schema["pattern"] = field.schema_pattern
        # An input's text field (outputs may be blank): the validators' pattern, else not blank.
        if (
            isinstance(field, serializers.CharField)
            and not field.allow_blank
            and isinstance(field.root, StrictSerializer)
        ):
            schema.setdefault("minLength", 1)
            if field.trim_whitespace:
                schema.setdefault("pattern", NOT_BLANK_PATTERN)

    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            if JSON_CONTENT in parameter:
                del parameter["schema"]
                parameter["content"] = {"application/json": {"schema": parameter.pop(JSON_CONTENT)}}
            elif parameter["in"] == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        return parameters

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        return [
            build_parameter_type(name=p["name"], location=OpenApiParameter.PATH, schema=PATH_PARAMETERS[p["name"]])
            if p["name"] in PATH_PARAMETERS
            else p
            for p in parameters
        ]


def _to(operation_id: str, parameters: dict[str, str], *, body: dict | None = None, if_match: bool = False) -> dict:
    """A link to `operation_id`: path parameters (and body fields) from the answer's fields, If-Match
    from its ETag."""
    link: dict = {"operationId": operation_id, "parameters": {p: f"$response.body#/{f}" for p, f in parameters.items()}}
    if if_match:
        link["parameters"]["header.If-Match"] = "$response.header.ETag"
    if body:
        link["requestBody"] = {name: f"$response.body#/{field}" for name, field in body.items()}
    return link


_MEMORY = {"namespace": "namespace", "key": "key"}
_TASK = {"task_id": "id"}
_LEASE = {"lease_id": "id"}
_HOLD = {"hold_id": "id"}
_ENTRY = {"entry_id": "id"}

# OpenAPI links: which answer names what the next operation needs (a stateful client, or
# schemathesis's stateful phase, follows them). (operation, status) -> {link name: target}.
LINKS: dict[tuple[str, str], dict[str, dict]] = {
    **{
        ("memories_update", status): {
            "GetMemory": _to("memories_retrieve", _MEMORY),
            "PatchMemory": _to("memories_partial_update", _MEMORY, if_match=True),
            "DeleteMemory": _to("memories_destroy", _MEMORY, if_match=True),
            "MemoryHistory": _to("memories_history_retrieve", _MEMORY),
            "VerifyMemory": _to("memories_verify_create", _MEMORY),
            "RevertMemory": _to("memories_revert_create", _MEMORY, if_match=True),
        }
        for status in ("200", "201")
    },
    **{("tasks_create", status): {"GetTask": _to("tasks_retrieve", _TASK)} for status in ("200", "201")},
    # Only the claimant may heartbeat, complete or fail a task.
    ("tasks_claim_create", "200"): {
        "GetTask": _to("tasks_retrieve", _TASK),
        "HeartbeatTask": _to("tasks_heartbeat_create", _TASK),
        "CompleteTask": _to("tasks_complete_create", _TASK),
        "FailTask": _to("tasks_fail_create", _TASK),
    },
    ("locks_create", "201"): {
        "GetLease": _to("locks_retrieve", _LEASE),
        "HeartbeatLease": _to("locks_heartbeat_create", _LEASE, body={"holder_token": "holder_token"}),
        "ReleaseLease": _to("locks_destroy", _LEASE, body={"holder_token": "holder_token"}),
    },
    ("holds_create", "201"): {"GetHold": _to("holds_retrieve", _HOLD), "LiftHold": _to("holds_destroy", _HOLD)},
    ("contexts_create", "201"): {
        "GetEntry": _to("contexts_retrieve", _ENTRY),
        "ReadEntry": _to("contexts_read_create", _ENTRY),
        "AckEntry": _to("contexts_ack_create", _ENTRY),
    },
}


def add_links(result, generator, request, public):
    """drf-spectacular postprocessing hook: LINKS into the responses they start from."""
    responses = {
        (operation["operationId"], status): response
        for path in result["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
        for status, response in operation.get("responses", {}).items()
    }
    for source, links in LINKS.items():
        if source in responses:
            responses[source]["links"] = links
    return result


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "memoryhub.agents.authentication.BearerTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An agent's API token."}


class HumanSessionScheme(OpenApiAuthenticationExtension):
    target_class = "memoryhub.agents.authentication.HumanSessionAuthentication"
    name = "humanSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid", "description": "A staff user's session."}
