from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, so a forged `updated_by` or `from_role` is a 400, not ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)


class AnyJSONField(serializers.JSONField):
    """A JSON value of any type (null included when allowed)."""
