from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "memoryhub.events"
    label = "events"
