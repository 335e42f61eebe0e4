from django.apps import AppConfig


class TalliesConfig(AppConfig):
    name = "memoryhub.tallies"
    label = "tallies"
