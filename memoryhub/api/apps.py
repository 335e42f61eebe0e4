from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "memoryhub.api"
    label = "api"

    def ready(self):
        from django.urls import register_converter

        from . import schema  # noqa: F401  (registers the bearer-token OpenAPI extension)
        from .params import IdConverter

        register_converter(IdConverter, "id")  # before any URLconf is loaded
