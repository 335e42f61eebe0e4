from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "memoryhub.api"
    label = "api"

    def ready(self):
        from . import schema  # noqa: F401  (registers the bearer-token OpenAPI extension)
