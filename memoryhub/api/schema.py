"""OpenAPI: bearer tokens, and a JSON object for views that do not declare a serializer."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes


class HubAutoSchema(AutoSchema):
    def _get_serializer(self):
        if hasattr(self.view, "get_serializer") or hasattr(self.view, "serializer_class"):
            return super()._get_serializer()
        return None

    def get_request_serializer(self):
        return self._get_serializer()

    def get_response_serializers(self):
        return self._get_serializer() or OpenApiTypes.OBJECT


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
