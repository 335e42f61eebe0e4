import threading

from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

_built = threading.local()  # .fields: {serializer class: its fields}, per thread


# The JSON types a field takes, as the schema documents them. DRF also coerces others (the number 5
# for a CharField, "5" for an IntegerField, "yes" for a BooleanField), which the schema does not allow.
_JSON_TYPES: list[tuple[type[serializers.Field], tuple[type, ...], str]] = [
    (serializers.CharField, (str,), "Not a valid string."),
    (serializers.BooleanField, (bool,), "Must be a boolean."),
    (serializers.IntegerField, (int, float), "A valid integer is required."),  # 3.0 is an integer
    (serializers.FloatField, (int, float), "A valid number is required."),
]


def _wrong_type(field: serializers.Field, value) -> str | None:
    """Why `value` is not of the JSON type `field` documents, or None."""
    if value is None:
        return None  # allow_null decides
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        return next((error for item in value if (error := _wrong_type(field.child, item))), None)
    for field_class, types, error in _JSON_TYPES:
        if isinstance(field, field_class):
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                return error
            if isinstance(field, serializers.IntegerField) and isinstance(value, float) and not value.is_integer():
                return error
            return None
    return None


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, so a forged `updated_by` or `from_role` is a 400, not ignored,
    and values of another JSON type than the field's.

    Its fields are built once per class and thread, not deep-copied for every instance as DRF does
    (that copy was a seventh of a rejected memory write's CPU, measured): the hub's input serializers
    never change their fields, and a field keeps no state between validations but its parent, which
    is set to the instance using it. Per thread, as one thread validates one body at a time."""

    @cached_property
    def fields(self):
        built = _built.__dict__.setdefault("fields", {})
        fields = built.get(type(self))
        if fields is None:
            fields = built[type(self)] = super().fields
        for field in fields.values():
            field.parent = self
        return fields

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
            fields = self.fields
            wrong = {name: [error] for name, value in data.items() if (error := _wrong_type(fields[name], value))}
            if wrong:
                raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


class AnyJSONField(serializers.JSONField):
    """A JSON value of any type (null included when allowed)."""


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """A JSON object (content, a merge patch): anything else is a 400 naming the field."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class CheckedText(serializers.CharField):
    """Text the service checks against `pattern` (JSON Schema's spelling of its regex): the schema
    documents the pattern (HubAutoSchema), and the service's 400 names the field along with the other
    fields' errors. Untrimmed, as the service sees it."""

    def __init__(self, pattern: str, **kwargs) -> None:
        self.schema_pattern = pattern
        super().__init__(trim_whitespace=False, **kwargs)


def validated(serializer_class: type[serializers.Serializer], request) -> dict:
    """The request body validated by `serializer_class` (an empty body is an empty object, `null` is
    no object); a 400 in the error shape otherwise."""
    serializer = serializer_class(data=request.data)  # None: the body was `null` (a 400)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
