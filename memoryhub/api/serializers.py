import threading

from django.utils.functional import cached_property
from rest_framework import serializers

_built = threading.local()  # .fields: {serializer class: its fields}, per thread


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, so a forged `updated_by` or `from_role` is a 400, not ignored.

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
        return super().to_internal_value(data)


class AnyJSONField(serializers.JSONField):
    """A JSON value of any type (null included when allowed)."""


def validated(serializer_class: type[serializers.Serializer], request) -> dict:
    """The request body validated by `serializer_class` (an empty body is an empty object); a 400 in
    the error shape otherwise."""
    serializer = serializer_class(data=request.data if request.data is not None else {})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
