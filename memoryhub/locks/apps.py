from django.apps import AppConfig


class LocksConfig(AppConfig):
    name = "memoryhub.locks"
    label = "locks"
